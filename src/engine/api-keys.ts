import { Context, Deferred, Effect, Layer, Option, Schedule } from "effect"
import { InvalidApiKey, KeyNotFound, type StoreUnavailable } from "../domain/errors.ts"
import type { OrgId } from "../domain/ids.ts"
import type { ApiKey, Caller, KeyId, KeyLimits } from "../domain/keys.ts"
import { KeysRepo } from "../store/keys-repo.ts"
import { displayPrefix, hashSecret, maxSecretChars, newSecret } from "./key-secrets.ts"

/**
 * How stale a cached key may be when it authenticates a request. The refresher re-reads every
 * cached key twice as often, so a key revoked elsewhere (the CLI, another replica) stops working
 * within about half of this; one revoked through this gateway stops at once (evicted).
 */
export const maxKeyStalenessMs = 1_000
const refreshEveryMs = maxKeyStalenessMs / 2
/** `last_used_at` is written at most this often per key, by the refresher, never by a request. */
export const lastUsedEveryMs = 60_000
/** A key not used this long leaves the cache (so the refresher's query stays small). */
const idleEvictMs = 10 * 60_000
/** Bounds: a flood of distinct (unknown) keys starts the negative cache over rather than growing it. */
const maxCachedKeys = 10_000
const maxCachedUnknown = 10_000

interface Entry {
  caller: Caller
  revoked: boolean
  checkedAt: number
  usedAt: number
  touchedAt: number
}

const invalid = new InvalidApiKey({
  message: "send a valid API key: Authorization: Bearer <key> or x-api-key: <key>",
})

const callerOf = (key: ApiKey): Caller => ({
  org: key.org_id as OrgId,
  keyId: key.key_id,
  limits: key.limits,
})

export interface IssuedKey {
  readonly key: ApiKey
  /** The secret: shown once, to whoever asked for the key, never stored or logged. */
  readonly secret: string
}

/** What issuing a key answers (the admin API, the CLI): the only answer that shows the secret. */
export const issuedKeyAnswer = ({ key, secret }: IssuedKey) => ({
  key_id: key.key_id,
  key: secret,
  org_id: key.org_id,
  name: key.name,
  created_at: key.created_at,
  limits: key.limits,
})

/**
 * API keys: issuing, changing and revoking them, and authenticating a request's secret against an
 * in-memory cache (a secret's hash → its caller), so a request costs a hash and a map lookup, not a
 * database round trip.
 */
export class ApiKeys extends Context.Service<
  ApiKeys,
  {
    readonly authenticate: (
      secret: string | undefined,
    ) => Effect.Effect<Caller, InvalidApiKey | StoreUnavailable>
    readonly issue: (input: {
      readonly org: OrgId
      readonly name: string | null
      readonly limits: KeyLimits
    }) => Effect.Effect<IssuedKey, StoreUnavailable>
    readonly list: (org: OrgId | undefined) => Effect.Effect<ReadonlyArray<ApiKey>, StoreUnavailable>
    readonly update: (
      id: KeyId,
      change: { readonly name?: string | null | undefined; readonly limits?: KeyLimits | undefined },
    ) => Effect.Effect<ApiKey, KeyNotFound | StoreUnavailable>
    readonly revoke: (id: KeyId) => Effect.Effect<ApiKey, KeyNotFound | StoreUnavailable>
  }
>()("dac/engine/ApiKeys") {
  static readonly layer = Layer.effect(
    ApiKeys,
    Effect.gen(function* () {
      const repo = yield* KeysRepo
      const byHash = new Map<string, Entry>()
      /** Hashes the store did not know, and when it said so. */
      const unknown = new Map<string, number>()

      const remember = (hash: string, key: ApiKey, now: number) => {
        const previous = byHash.get(hash)
        if (previous === undefined && byHash.size >= maxCachedKeys) byHash.clear()
        const entry: Entry = {
          caller: callerOf(key),
          revoked: key.revoked_at !== null,
          checkedAt: now,
          usedAt: previous?.usedAt ?? now,
          touchedAt: previous?.touchedAt ?? 0,
        }
        byHash.set(hash, entry)
        return entry
      }

      const lookup = Effect.fn("ApiKeys.lookup")(function* (hash: string, now: number) {
        const found = yield* repo.findByHash(hash)
        if (Option.isNone(found)) {
          if (unknown.size >= maxCachedUnknown) unknown.clear()
          unknown.set(hash, now)
          return undefined
        }
        return remember(hash, found.value, now)
      })

      /**
       * One store lookup per hash at a time: a burst of requests with a key not cached yet (just
       * issued, or after the store was slow) waits for one query instead of queueing thousands.
       * The query runs uninterruptibly (it is bounded by the store's deadline), so a first request
       * hanging up never leaves the others without an answer.
       */
      const inflight = new Map<string, Deferred.Deferred<Entry | undefined, StoreUnavailable>>()
      const lookupOnce = (hash: string, now: number) =>
        Effect.suspend(() => {
          const running = inflight.get(hash)
          if (running !== undefined) return Deferred.await(running)
          const deferred = Deferred.makeUnsafe<Entry | undefined, StoreUnavailable>()
          inflight.set(hash, deferred)
          return lookup(hash, now).pipe(
            Effect.onExit((exit) => {
              inflight.delete(hash)
              return Deferred.done(deferred, exit)
            }),
            Effect.uninterruptible,
          )
        })

      const authenticate = (
        secret: string | undefined,
      ): Effect.Effect<Caller, InvalidApiKey | StoreUnavailable> => {
        if (secret === undefined || secret.length === 0 || secret.length > maxSecretChars) {
          return Effect.fail(invalid)
        }
        const hash = hashSecret(secret)
        const now = Date.now()
        const cached = byHash.get(hash)
        if (cached !== undefined && now - cached.checkedAt <= maxKeyStalenessMs) {
          if (cached.revoked) return Effect.fail(invalid)
          cached.usedAt = now
          return Effect.succeed(cached.caller)
        }
        const unknownAt = unknown.get(hash)
        if (unknownAt !== undefined && now - unknownAt <= maxKeyStalenessMs) return Effect.fail(invalid)
        // Not cached, or the refresher has fallen behind (the store is slow): ask the store.
        return Effect.flatMap(lookupOnce(hash, now), (entry) => {
          if (entry === undefined || entry.revoked) return Effect.fail(invalid)
          entry.usedAt = now
          return Effect.succeed(entry.caller)
        })
      }

      /** Re-reads every cached key (one query), writes due `last_used_at`s, forgets idle keys. */
      const refresh = Effect.gen(function* () {
        const started = Date.now()
        const hashes = new Map<KeyId, string>()
        const due: Array<KeyId> = []
        for (const [hash, entry] of byHash) {
          if (started - entry.usedAt > idleEvictMs) {
            byHash.delete(hash)
            continue
          }
          const id = entry.caller.keyId!
          hashes.set(id, hash)
          if (entry.usedAt > entry.touchedAt && started - entry.touchedAt >= lastUsedEveryMs) {
            entry.touchedAt = started
            due.push(id)
          }
        }
        for (const [hash, at] of unknown) if (started - at > maxKeyStalenessMs) unknown.delete(hash)
        if (due.length > 0) {
          yield* repo
            .touch(due)
            .pipe(Effect.catch(() => Effect.logWarning("could not record keys' last use")))
        }
        if (hashes.size === 0) return
        const keys = yield* repo.findMany([...hashes.keys()])
        const seen = new Set<KeyId>()
        for (const key of keys) {
          seen.add(key.key_id)
          const hash = hashes.get(key.key_id)!
          // Evicted (revoked here) while the query ran: it stays out.
          if (byHash.has(hash)) remember(hash, key, started)
        }
        // A key deleted from the store is as good as revoked.
        for (const [id, hash] of hashes) if (!seen.has(id)) byHash.delete(hash)
      })
      yield* refresh.pipe(
        Effect.catch(() => Effect.void),
        Effect.repeat(Schedule.spaced(refreshEveryMs)),
        Effect.forkScoped,
      )

      const evict = (id: KeyId) => {
        for (const [hash, entry] of byHash) if (entry.caller.keyId === id) byHash.delete(hash)
      }

      const notFound = (id: KeyId) => new KeyNotFound({ message: `key ${id} not found` })

      const issue = Effect.fn("ApiKeys.issue")(function* (input: {
        readonly org: OrgId
        readonly name: string | null
        readonly limits: KeyLimits
      }) {
        const secret = newSecret()
        const key = yield* repo.insert({
          id: crypto.randomUUID().toLowerCase() as KeyId,
          org: input.org,
          name: input.name,
          prefix: displayPrefix(secret),
          secretHash: hashSecret(secret),
          limits: input.limits,
        })
        yield* Effect.logInfo("API key issued", { key_id: key.key_id, org_id: key.org_id })
        return { key, secret }
      })

      const update = Effect.fn("ApiKeys.update")(function* (
        id: KeyId,
        change: { readonly name?: string | null | undefined; readonly limits?: KeyLimits | undefined },
      ) {
        const key = yield* repo.update(id, change)
        if (Option.isNone(key)) return yield* notFound(id)
        // New limits apply from the next request (it re-reads the key).
        evict(id)
        return key.value
      })

      const revoke = Effect.fn("ApiKeys.revoke")(function* (id: KeyId) {
        const key = yield* repo.revoke(id)
        if (Option.isNone(key)) return yield* notFound(id)
        evict(id)
        yield* Effect.logInfo("API key revoked", { key_id: id, org_id: key.value.org_id })
        return key.value
      })

      return ApiKeys.of({ authenticate, issue, list: repo.list, update, revoke })
    }),
  )
}
