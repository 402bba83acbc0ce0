import { Effect, Layer } from "effect"
import { KeyBudgetExhausted, KeyConcurrencyLimited, KeyRateLimited } from "../domain/errors.ts"
import type { Caller, KeyId, KeyLimits } from "../domain/keys.ts"
import { SharedRedis } from "../store/redis.ts"
import { keyAdmit, keyCharge, keyRelease, renewHeld } from "../store/redis-scripts.ts"
import { type KeyAdmission, KeyLimiter, makeKeyLimits, noLimit } from "./key-limits.ts"

/** Counts without refusing: the local counters follow every request, so a fallback starts warm. */
const countOnly: KeyLimits = {
  requests_per_minute: Number.MAX_SAFE_INTEGER,
  concurrent_requests: Number.MAX_SAFE_INTEGER,
  tokens_per_day: Number.MAX_SAFE_INTEGER,
}

/** A limit split between the replicas while Redis is unreachable (never below 1). */
const shareOf = (limit: number | undefined, replicas: number) =>
  limit === undefined ? undefined : Math.max(1, Math.floor(limit / replicas))

/**
 * KeyLimiter with REDIS_URL: the same three limits, counted in Redis for every replica at once (one
 * atomic script per admission, redis-scripts.ts `keys.admit`). The in-flight slots are held under
 * the replica's lease, like the pacer's. This replica also keeps its own counters (key-limits.ts)
 * of every request it admits: while Redis is unreachable it admits against them with each limit
 * divided by REPLICA_COUNT, so the replicas together stay within the limit (tokens_per_day: each
 * replica's own tokens today against its share). `usage` reads those local counters.
 *
 * A release lost to an outage (or an admission whose reply was lost) would leave Redis counting a
 * slot for ever while this replica lives: every SHARED_LEASE_MS / 3 the replica sets its count of
 * each key it holds slots of to what it really holds (never while an admission of that key is
 * under way: Redis runs one connection's commands in send order).
 */
export const sharedKeyLimiterLayer = Layer.effect(
  KeyLimiter,
  Effect.gen(function* () {
    const redis = yield* SharedRedis
    const local = makeKeyLimits(Date.now)
    const replicas = redis.replicaCount
    const inFlightKey = (keyId: string) => redis.key("key", keyId, "in_flight")
    /** Keys with a concurrent_requests limit this replica may hold slots of: admissions under way. */
    const held = new Map<KeyId, { pending: number }>()
    const renew = () => {
      if (!redis.isUp()) return
      for (const [keyId, entry] of held) {
        if (entry.pending > 0) continue
        const count = local.usage(keyId).inFlight
        if (count === 0) held.delete(keyId)
        redis
          .evalScript(
            renewHeld,
            [inFlightKey(keyId), redis.replicasKey],
            [redis.replicaId, count, redis.leaseMs],
          )
          .catch(() => {})
      }
    }
    const timer = setInterval(renew, Math.max(100, Math.floor(redis.leaseMs / 3)))
    timer.unref()
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))

    const fallback = (caller: Caller) => {
      const admitted = local.admit({
        ...caller,
        limits: {
          requests_per_minute: shareOf(caller.limits.requests_per_minute, replicas),
          concurrent_requests: shareOf(caller.limits.concurrent_requests, replicas),
          tokens_per_day: shareOf(caller.limits.tokens_per_day, replicas),
        },
      })
      if ("_tag" in admitted) return Effect.fail(admitted)
      // Registered in Redis by the next renew once it answers again.
      if (
        caller.keyId !== null &&
        caller.limits.concurrent_requests !== undefined &&
        !held.has(caller.keyId)
      ) {
        held.set(caller.keyId, { pending: 0 })
      }
      return Effect.succeed(admitted)
    }

    const admitShared = Effect.fn("KeyLimiter.admitShared")(function* (caller: Caller, keyId: KeyId) {
      const {
        requests_per_minute: rpm,
        concurrent_requests: concurrent,
        tokens_per_day: budget,
      } = caller.limits
      const keys = {
        minute: redis.key("key", keyId, "minute"),
        inFlight: inFlightKey(keyId),
        tokens: redis.key("key", keyId, "tokens"),
      }
      let counted: KeyAdmission | undefined
      let entry: { pending: number } | undefined
      if (concurrent !== undefined) {
        entry = held.get(keyId) ?? { pending: 0 }
        held.set(keyId, entry)
        entry.pending++
      }
      const reply = (yield* redis
        .run(
          keyAdmit,
          [keys.minute, keys.inFlight, keys.tokens, redis.replicasKey],
          [redis.replicaId, rpm ?? -1, concurrent ?? -1, budget ?? -1, redis.leaseMs],
        )
        .pipe(
          // Counted here before the pending mark goes: the next renew then includes this slot.
          Effect.map((reply) => {
            const verdict = (reply as ReadonlyArray<number>)[0]
            if (verdict === 0) counted = local.admit({ ...caller, limits: countOnly }) as KeyAdmission
            return reply
          }),
          Effect.ensuring(
            Effect.sync(() => {
              if (entry !== undefined) entry.pending--
            }),
          ),
        )) as ReadonlyArray<number>
      const [verdict, value, retryAfterMs] = reply
      if (verdict === 1) {
        return yield* new KeyBudgetExhausted({
          message: `this key used its ${budget} tokens for today (tokens_per_day, UTC); it resets at 00:00 UTC`,
          retryAfterMs: retryAfterMs!,
        })
      }
      if (verdict === 2) {
        return yield* new KeyRateLimited({
          message: `this key made ${value} requests in the last minute (requests_per_minute=${rpm})`,
          retryAfterMs: retryAfterMs!,
        })
      }
      if (verdict === 3) {
        return yield* new KeyConcurrencyLimited({
          message: `this key has ${value} requests in flight (concurrent_requests=${concurrent})`,
          retryAfterMs: 1000,
        })
      }
      const admitted = counted!
      let released = false
      const admission: KeyAdmission = {
        release: () => {
          if (released) return
          released = true
          admitted.release()
          if (concurrent !== undefined) {
            redis.evalScript(keyRelease, [keys.inFlight], [redis.replicaId]).catch(() => {})
          }
        },
        charge: (tokens) => {
          admitted.charge(tokens)
          if (tokens > 0) redis.evalScript(keyCharge, [keys.tokens], [tokens]).catch(() => {})
        },
      }
      return admission
    })

    return KeyLimiter.of({
      admit: (caller) => {
        const { keyId, limits } = caller
        if (keyId === null) return Effect.succeed(noLimit)
        if (
          limits.requests_per_minute === undefined &&
          limits.concurrent_requests === undefined &&
          limits.tokens_per_day === undefined
        ) {
          return Effect.succeed(noLimit)
        }
        if (!redis.isUp()) return fallback(caller)
        // A failed script (Redis gone mid-way, or slower than REDIS_COMMAND_TIMEOUT_MS) is an outage.
        return admitShared(caller, keyId).pipe(Effect.catchTag("RedisUnavailable", () => fallback(caller)))
      },
      usage: local.usage,
    })
  }),
)
