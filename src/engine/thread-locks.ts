import { Context, Effect, Layer } from "effect"
import type { MessageId, RequestId, ThreadId } from "../domain/ids.ts"
import { redisScript, SharedRedis } from "../store/redis.ts"

/**
 * Takes a thread for a turn (or renews it, for its holder); answers {taken, the thread's last
 * complete reply}. The lock lapses after the lease: a replica that died frees its threads.
 */
const takeScript = redisScript(
  "thread.take",
  2,
  `local holder = redis.call('GET', KEYS[1])
local last = redis.call('GET', KEYS[2]) or ''
if holder and holder ~= ARGV[1] then return {0, last} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, last}`,
)

/** Frees a thread its holder had, and records its last complete reply (ARGV[2], when not empty). */
const leaveScript = redisScript(
  "thread.leave",
  2,
  `if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', 86400000) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
)

/** How often a turn asks again for a thread another replica's turn holds. */
const pollMs = 20

/**
 * One turn at a time per thread on every replica (with REDIS_URL; the thread actor keeps the order
 * within a replica). A turn takes its thread's lock in Redis before it goes upstream and frees it
 * when it settles, recording the reply it added; the lock is held under `SHARED_LEASE_MS`, renewed
 * every third of it, so a replica that died frees its threads that much later. Without REDIS_URL
 * (`layerLocal`) nothing is taken: the actor's order is the whole order.
 */
export class ThreadLocks extends Context.Service<
  ThreadLocks,
  {
    /**
     * Waits until the thread is this turn's on every replica (in about the order they ask); the
     * thread's last complete reply as the replicas recorded it (null: none recorded, or no Redis:
     * then only this replica's order holds).
     */
    readonly take: (threadId: ThreadId, requestId: RequestId) => Effect.Effect<MessageId | null>
    /** The turn settled: the thread is free for the next turn anywhere (`lastReply`: its reply, if complete). */
    readonly leave: (threadId: ThreadId, requestId: RequestId, lastReply: MessageId | null) => void
    /** How many threads this replica's turns hold now (`/ready`). */
    readonly held: () => number
  }
>()("dac/engine/ThreadLocks") {
  static readonly layerLocal = Layer.succeed(
    ThreadLocks,
    ThreadLocks.of({ take: () => Effect.succeed(null), leave: () => {}, held: () => 0 }),
  )

  static readonly layer = Layer.effect(
    ThreadLocks,
    Effect.gen(function* () {
      const redis = yield* SharedRedis
      const { leaseMs } = redis
      const keys = (threadId: ThreadId) => [
        redis.key("thread", threadId),
        redis.key("thread", threadId, "last"),
      ]
      /** The threads this replica's turns hold: thread → request. */
      const held = new Map<ThreadId, RequestId>()
      // A lost write is not worth a log line each: the lease frees the thread anyway.
      const ignore = () => {}

      const take = Effect.fn("ThreadLocks.take")(function* (threadId: ThreadId, requestId: RequestId) {
        for (;;) {
          const answer = (yield* Effect.tryPromise(() =>
            redis.evalScript(takeScript, keys(threadId), [requestId, leaseMs]),
          ).pipe(Effect.orElseSucceed(() => undefined))) as [number, string] | undefined
          // Redis down: this replica's own order is all there is until it is back.
          if (answer === undefined) return null
          if (answer[0] === 1) {
            held.set(threadId, requestId)
            return answer[1] === "" ? null : (answer[1] as MessageId)
          }
          yield* Effect.sleep(pollMs)
        }
      })

      const leave = (threadId: ThreadId, requestId: RequestId, lastReply: MessageId | null) => {
        if (held.get(threadId) === requestId) held.delete(threadId)
        redis.evalScript(leaveScript, keys(threadId), [requestId, lastReply ?? ""]).catch(ignore)
      }

      const renew = setInterval(
        () => {
          for (const [threadId, requestId] of held) {
            redis.evalScript(takeScript, keys(threadId), [requestId, leaseMs]).catch(ignore)
          }
        },
        Math.max(100, Math.floor(leaseMs / 3)),
      )
      renew.unref()
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(renew)))

      return ThreadLocks.of({ take, leave, held: () => held.size })
    }),
  )
}
