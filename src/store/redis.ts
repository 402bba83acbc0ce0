import { createHash } from "node:crypto"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Redis as IORedis } from "ioredis"
import { AppConfig } from "../config.ts"

/** Redis did not answer (down, refusing, or slower than REDIS_COMMAND_TIMEOUT_MS). */
export class RedisUnavailable extends Schema.TaggedError<RedisUnavailable>()("RedisUnavailable", {
  message: Schema.String,
}) {}

/** A Lua script, sent by its SHA1 and loaded on a miss (after a Redis restart, its cache is empty). */
export interface RedisScript {
  readonly name: string
  readonly source: string
  readonly sha: string
  readonly keys: number
}

export const redisScript = (name: string, keys: number, source: string): RedisScript => ({
  name,
  source,
  keys,
  sha: createHash("sha1").update(source).digest("hex"),
})

export interface RedisStatus {
  readonly state: "up" | "down"
  /** Epoch ms of the last change of state. */
  readonly since: number
  /** Why it went down (the client's words: they name no secret, REDIS_URL's password is not in them). */
  readonly lastError: string | null
  /** How often it went down since start. */
  readonly outages: number
}

/** Scripts that every replica runs: the heartbeat that keeps this replica's slots alive. */
const heartbeat = redisScript(
  "heartbeat",
  1,
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
-- Replicas gone for an hour leave the registry; slots they held were ignored long before.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
return now`,
)

const leave = redisScript("leave", 1, `return redis.call('ZREM', KEYS[1], ARGV[1])`)

/**
 * The Redis connection shared by the pacer and the key limits, only built with `REDIS_URL`.
 *
 * Fail fast, never queue: with Redis down a command fails at once (no offline queue, no retry per
 * command, REDIS_COMMAND_TIMEOUT_MS at most) so a request falls back to this replica's share of the
 * limits instead of waiting; the client reconnects by itself (every ≤ 1 s) and the state turns `up`
 * again on its own. The replica's lease (`{prefix}replicas`, renewed every SHARED_LEASE_MS / 3)
 * is what keeps the slots it holds counted: a replica killed outright stops renewing, and the
 * others stop counting its slots SHARED_LEASE_MS later.
 */
export class SharedRedis extends Context.Service<
  SharedRedis,
  {
    readonly replicaId: string
    /**
     * The connection itself, for what scripts do not cover (the relay's streams and channel). It
     * fails fast while Redis is down, like every command here.
     */
    readonly client: IORedis
    readonly replicaCount: number
    readonly leaseMs: number
    /** The registry of live replicas (sorted set: replica id → lease end, Redis time in ms). */
    readonly replicasKey: string
    /** A key under REDIS_KEY_PREFIX. */
    readonly key: (...parts: ReadonlyArray<string>) => string
    readonly isUp: () => boolean
    readonly status: () => RedisStatus
    /** Runs a script; a Promise because the pacer calls it from its timer callbacks. */
    readonly evalScript: (
      script: RedisScript,
      keys: ReadonlyArray<string>,
      args: ReadonlyArray<string | number>,
    ) => Promise<unknown>
    /** The same as an Effect. */
    readonly run: (
      script: RedisScript,
      keys: ReadonlyArray<string>,
      args: ReadonlyArray<string | number>,
    ) => Effect.Effect<unknown, RedisUnavailable>
    /** Called on every change of state (`true`: up). */
    readonly onChange: (listener: (up: boolean) => void) => void
  }
>()("dac/store/SharedRedis") {
  static readonly layer = Layer.effect(
    SharedRedis,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const { cluster } = config
      if (Option.isNone(cluster.redisUrl)) return yield* Effect.die("SharedRedis needs REDIS_URL")
      const services = yield* Effect.context<never>()
      const log = (effect: Effect.Effect<void>) => void Effect.runForkWith(services)(effect)
      const { replicaId } = config
      const key = (...parts: ReadonlyArray<string>) => `${cluster.keyPrefix}${parts.join(":")}`
      const replicasKey = key("replicas")

      const client = new IORedis(Redacted.value(cluster.redisUrl.value), {
        // No offline queue and no retry per command: while Redis is down a command fails at once.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: cluster.commandTimeoutMs,
        connectTimeout: 2_000,
        // Reconnect for ever, at most a second apart: recovery needs no restart.
        retryStrategy: (times) => Math.min(50 * times, 1_000),
        lazyConnect: true,
        connectionName: `dac:${replicaId}`,
        // Commands sent in the same turn of the event loop go out in one write: a turn's claim,
        // thread lock and pacer scripts from many requests cost one syscall, not one each.
        enableAutoPipelining: true,
      })
      let status: RedisStatus = { state: "down", since: Date.now(), lastError: null, outages: 0 }
      const listeners: Array<(up: boolean) => void> = []
      let closing = false
      const setState = (up: boolean, error?: string) => {
        // Our own quit at shutdown is no outage.
        if (closing) return
        if (error !== undefined) status = { ...status, lastError: error }
        if ((status.state === "up") === up) return
        status = {
          state: up ? "up" : "down",
          since: Date.now(),
          lastError: up ? null : status.lastError,
          outages: status.outages + (up ? 0 : 1),
        }
        log(
          up
            ? Effect.logInfo("redis up: the pacer and key limits are shared again", { replica: replicaId })
            : Effect.logWarning(
                `redis down: each replica falls back to 1/${cluster.replicaCount} of every limit (REPLICA_COUNT)`,
                { replica: replicaId, error: status.lastError },
              ),
        )
        for (const listener of listeners) listener(up)
      }
      client.on("ready", () => setState(true))
      client.on("close", () => setState(false))
      client.on("error", (error: Error) => {
        status = { ...status, lastError: error.message }
      })

      const evalScript = async (
        script: RedisScript,
        keys: ReadonlyArray<string>,
        args: ReadonlyArray<string | number>,
      ): Promise<unknown> => {
        try {
          return await client.evalsha(script.sha, script.keys, ...keys, ...args)
        } catch (error) {
          // A restarted Redis has an empty script cache: load it once, then EVALSHA works again.
          if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
            return await client.eval(script.source, script.keys, ...keys, ...args)
          }
          throw error
        }
      }
      const run = (script: RedisScript, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
        Effect.tryPromise({
          try: () => evalScript(script, keys, args),
          catch: (error) => new RedisUnavailable({ message: `redis ${script.name}: ${String(error)}` }),
        })

      const beat = () => {
        if (client.status !== "ready") return
        evalScript(heartbeat, [replicasKey], [replicaId, cluster.leaseMs]).catch((error: unknown) => {
          status = { ...status, lastError: String(error) }
        })
      }
      client.on("ready", beat)
      // Redis down at start is an outage like any other: the replica starts in fallback.
      client.connect().catch(() => {})
      const timer = setInterval(beat, Math.max(100, Math.floor(cluster.leaseMs / 3)))
      timer.unref()

      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          clearInterval(timer)
          closing = true
          listeners.length = 0
          // Leaving the registry at once: the others stop counting this replica's slots now.
          if (client.status === "ready") await evalScript(leave, [replicasKey], [replicaId]).catch(() => {})
          await client.quit().catch(() => client.disconnect())
        }),
      )
      yield* Effect.logInfo("replica started with REDIS_URL: the pacer and key limits are shared", {
        replica: replicaId,
        replicas: cluster.replicaCount,
      })

      return SharedRedis.of({
        replicaId,
        client,
        replicaCount: cluster.replicaCount,
        leaseMs: cluster.leaseMs,
        replicasKey,
        key,
        isUp: () => status.state === "up",
        status: () => status,
        evalScript,
        run,
        onChange: (listener) => void listeners.push(listener),
      })
    }),
  )
}
