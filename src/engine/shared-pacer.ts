import { Context, Deferred, Effect, Layer } from "effect"
import { AppConfig, type ProviderName, type ProviderSettings, providerNames } from "../config.ts"
import { PacerQueueFull } from "../domain/errors.ts"
import { Overloaded, type ProviderError } from "../domain/provider-errors.ts"
import { SharedRedis } from "../store/redis.ts"
import { pacerAcquire, pacerPeek, pacerRelease, renewHeld } from "../store/redis-scripts.ts"
import { makeDeadlines } from "./deadlines.ts"
import { FairQueue } from "./fair-queue.ts"
import {
  countOrgSlot,
  inFlightShare,
  maxTimerMs,
  Pacer,
  type PacerState,
  refusal,
  type Ticket,
} from "./pacer.ts"
import { makeBucket, msUntilToken, type TokenBucket, tryTake } from "./token-bucket.ts"

/** The most slots one round trip asks for: a burst of waiters costs a few scripts, not one each. */
const maxBatch = 32
/** Every provider's budget is spent: ask again this soon, or when a slot of this replica frees. */
const slotPollMs = 10
/** After failed takes, this provider dispatches from its local share for this long. */
const fallbackHoldMs = 1_000
/**
 * Takes that may fail in a row (REDIS_COMMAND_TIMEOUT_MS each) before a connected Redis counts as
 * down. One slow reply is no outage: on a busy event loop the timeout can fire before a reply
 * already in the socket is read, and falling back then would let this replica's share through on
 * top of the shared budget. A lost connection falls back at once.
 */
const failuresBeforeFallback = 3

interface Waiter {
  readonly org: string
  readonly enqueuedAt: number
  dispatchedAt: number
  /** The slot came from Redis (its release goes back there) rather than from the local share. */
  shared: boolean
  readonly wake: Deferred.Deferred<void, Overloaded>
}

/** The shared budget, read from Redis now (or, Redis unreachable, as this replica last read it). */
export interface SharedBudgetState {
  readonly provider: ProviderName
  /** `shared`: slots come from Redis; `fallback`: from this replica's 1/REPLICA_COUNT share. */
  readonly mode: "shared" | "fallback"
  readonly tokens: number
  /** Slots held by every live replica, at the last read. */
  readonly inFlight: number
  readonly concurrencyLimit: number
  readonly pausedUntil: number | null
  /** The age of these figures (ms): 0 when read now; null when never read. */
  readonly readAgoMs: number | null
}

export interface SharedPacerStatus {
  readonly replicaId: string
  readonly leaseMs: number
  readonly providers: ReadonlyArray<SharedBudgetState>
  /** The shared pacer's own cost: Redis round trips and their mean time, and slots per trip. */
  readonly cost: { readonly roundTrips: number; readonly meanMs: number; readonly slotsPerTrip: number }
}

interface ProviderPacer {
  readonly name: ProviderName
  readonly settings: ProviderSettings
  readonly maxQueue: number
  readonly keys: { readonly state: string; readonly slots: string }
  readonly queue: FairQueue<Waiter>
  readonly inFlightByOrg: Map<string, number>
  /** Slots this replica holds, from Redis or from its share. */
  inFlight: number
  /** The shared limit as last read (or the share's, in fallback): the fair queue's view. */
  concurrencyLimit: number
  pausedUntil: number
  readonly fallback: { readonly bucket: TokenBucket; limit: number; readonly maxLimit: number }
  fallbackUntil: number
  /** Takes failed in a row. */
  failures: number
  acquiring: boolean
  renewDue: boolean
  /** The last round trip found every slot taken: a release here should ask again at once. */
  waitingForSlots: boolean
  timer: ReturnType<typeof setTimeout> | undefined
  last: { tokens: number; inFlight: number; limit: number; at: number } | undefined
}

/** The shared pacer's status, for `/ready` and `/metrics`. */
export class SharedPacer extends Context.Service<
  SharedPacer,
  { readonly status: Effect.Effect<SharedPacerStatus> }
>()("dac/engine/SharedPacer") {}

/**
 * The pacer with REDIS_URL: the same org-fair queue per replica (fair-queue.ts, `refusal`,
 * `inFlightShare`), but each slot is taken from the provider's budget in Redis — one token bucket,
 * one concurrency limit, one pause and one adaptive limit for every replica (redis-scripts.ts, one
 * atomic script per take). A replica's slots live under its lease (SHARED_LEASE_MS): killed, its
 * slots return to the others within that time. Redis unreachable: each provider dispatches from a
 * local bucket and limit of 1/REPLICA_COUNT of the configured ones, and goes back to the shared
 * budget as soon as Redis answers (this replica's slots are then registered there, see `renew`).
 */
export const sharedPacerLayer = Layer.effectContext(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const redis = yield* SharedRedis
    const replicas = redis.replicaCount
    const now = () => performance.now()
    const clampPause = (ms: number) =>
      Number.isFinite(ms) ? Math.min(Math.max(0, ms), config.upstreamMaxPauseMs) : config.upstreamMaxPauseMs
    const deadlines = makeDeadlines(now)
    const cost = { trips: 0, totalMs: 0, slots: 0 }
    const pacers = new Map<ProviderName, ProviderPacer>()
    for (const name of providerNames) {
      const settings = config.providers[name]
      const share = Math.max(1, Math.floor(settings.concurrency / replicas))
      pacers.set(name, {
        name,
        settings,
        maxQueue: settings.maxQueue,
        keys: { state: redis.key("pacer", name, "state"), slots: redis.key("pacer", name, "slots") },
        queue: new FairQueue<Waiter>(),
        inFlightByOrg: new Map(),
        inFlight: 0,
        concurrencyLimit: settings.concurrency,
        pausedUntil: 0,
        fallback: {
          bucket: makeBucket(
            settings.rps / replicas,
            Math.max(1, Math.floor(settings.burst / replicas)),
            now(),
          ),
          limit: share,
          maxLimit: share,
        },
        fallbackUntil: 0,
        failures: 0,
        acquiring: false,
        renewDue: false,
        waitingForSlots: false,
        timer: undefined,
        last: undefined,
      })
    }

    const shared = (pacer: ProviderPacer) => redis.isUp() && now() >= pacer.fallbackUntil
    const sleep = (pacer: ProviderPacer, ms: number) => {
      if (pacer.timer !== undefined) return
      pacer.timer = setTimeout(
        () => {
          pacer.timer = undefined
          dispatch(pacer)
        },
        Math.min(Math.ceil(ms), maxTimerMs),
      )
    }
    const wakeNow = (pacer: ProviderPacer) => {
      if (pacer.timer !== undefined) clearTimeout(pacer.timer)
      pacer.timer = undefined
      dispatch(pacer)
    }
    const failed = (pacer: ProviderPacer) => {
      pacer.failures++
      if (!redis.isUp() || pacer.failures >= failuresBeforeFallback)
        pacer.fallbackUntil = now() + fallbackHoldMs
    }

    const handOut = (pacer: ProviderPacer, sharedSlot: boolean): boolean => {
      if (pacer.queue.size === 0) return false
      const t = now()
      const share = inFlightShare(pacer)
      const waiter = pacer.queue.shift((org) => (pacer.inFlightByOrg.get(org) ?? 0) < share)!
      waiter.dispatchedAt = t
      waiter.shared = sharedSlot
      pacer.inFlight++
      countOrgSlot(pacer.inFlightByOrg, waiter.org, 1)
      Deferred.doneUnsafe(waiter.wake, Effect.void)
      return true
    }

    const releaseShared = (pacer: ProviderPacer, count: number, outcome: string, pauseMs = 0) => {
      if (!redis.isUp()) return // renew registers the true count once Redis is back
      redis
        .evalScript(
          pacerRelease,
          [pacer.keys.state, pacer.keys.slots],
          [redis.replicaId, count, outcome, pauseMs, pacer.settings.concurrency],
        )
        // A lost release leaves Redis counting a slot this replica no longer holds: renew fixes it.
        .catch(() => {})
    }

    // This replica's own count is the truth about what it holds: renewing sets it (and the lease),
    // which also registers after an outage the slots it took from its share meanwhile. Never while
    // a take is under way (its grant is not counted here yet; Redis runs commands in send order).
    const renew = (pacer: ProviderPacer) => {
      if (pacer.acquiring) {
        pacer.renewDue = true
        return
      }
      pacer.renewDue = false
      if (!redis.isUp()) return
      redis
        .evalScript(
          renewHeld,
          [pacer.keys.slots, redis.replicasKey],
          [redis.replicaId, pacer.inFlight, redis.leaseMs],
        )
        .catch(() => {})
    }

    const dispatchLocal = (pacer: ProviderPacer) => {
      const { bucket } = pacer.fallback
      pacer.concurrencyLimit = pacer.fallback.limit
      while (pacer.queue.size > 0 && pacer.inFlight < pacer.fallback.limit) {
        const t = now()
        const wait = Math.max(pacer.pausedUntil - t, msUntilToken(bucket, t))
        if (wait > 0) return sleep(pacer, Math.min(wait, fallbackHoldMs))
        tryTake(bucket, t)
        handOut(pacer, false)
      }
      // Slots held beyond the share (taken while shared): wait for Redis, or for them to end.
      if (pacer.queue.size > 0) sleep(pacer, fallbackHoldMs)
    }

    const dispatch = (pacer: ProviderPacer): void => {
      if (pacer.acquiring || pacer.queue.size === 0) return
      const t = now()
      if (pacer.pausedUntil > t) {
        sleep(pacer, pacer.pausedUntil - t)
        return
      }
      if (!shared(pacer)) {
        dispatchLocal(pacer)
        return
      }
      pacer.acquiring = true
      pacer.waitingForSlots = false
      const want = Math.min(pacer.queue.size, maxBatch)
      const { settings } = pacer
      redis
        .evalScript(
          pacerAcquire,
          [pacer.keys.state, pacer.keys.slots, redis.replicasKey],
          [redis.replicaId, want, settings.rps, settings.burst, settings.concurrency, redis.leaseMs],
        )
        .then(
          (reply) => {
            const at = now()
            cost.trips++
            cost.totalMs += at - t
            pacer.acquiring = false
            // Replies are { granted, wait, tokens, in flight, limit, paused ms left } (redis-scripts.ts).
            const [granted, wait, tokens, inFlight, limit, pausedLeft] = reply as [
              number,
              number,
              string,
              number,
              number,
              number,
            ]
            cost.slots += granted
            pacer.failures = 0
            pacer.last = { tokens: Number(tokens), inFlight, limit, at }
            pacer.concurrencyLimit = limit
            if (pausedLeft > 0) pacer.pausedUntil = Math.max(pacer.pausedUntil, at + pausedLeft)
            let extra = 0
            for (let i = 0; i < granted; i++) if (!handOut(pacer, true)) extra++
            // Waiters that left during the round trip: their slots go straight back.
            if (extra > 0) releaseShared(pacer, extra, "none")
            if (pacer.renewDue) renew(pacer)
            if (pacer.queue.size === 0) return
            if (granted === want) return dispatch(pacer)
            if (wait === -1) {
              pacer.waitingForSlots = true
              return sleep(pacer, slotPollMs)
            }
            sleep(pacer, Math.max(1, wait))
          },
          () => {
            pacer.acquiring = false
            failed(pacer)
            if (pacer.renewDue) renew(pacer)
            // Still shared: ask again shortly (the grant may even have been made; renew corrects it).
            if (shared(pacer)) sleep(pacer, slotPollMs)
            else dispatch(pacer)
          },
        )
    }

    const renewTimer = setInterval(
      () => {
        for (const pacer of pacers.values()) renew(pacer)
      },
      Math.max(100, Math.floor(redis.leaseMs / 3)),
    )
    renewTimer.unref()
    redis.onChange((up) => {
      for (const pacer of pacers.values()) {
        if (up) {
          pacer.fallbackUntil = 0
          pacer.failures = 0
          renew(pacer)
        }
        wakeNow(pacer)
      }
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        clearInterval(renewTimer)
        for (const pacer of pacers.values()) if (pacer.timer) clearTimeout(pacer.timer)
        deadlines.clear()
      }),
    )

    const enqueue = (provider: ProviderName, org: string) =>
      Effect.suspend(() => {
        const pacer = pacers.get(provider)!
        const slotFree = pacer.last === undefined || pacer.last.inFlight < pacer.last.limit
        const refused = refusal(pacer, org, slotFree && pacer.inFlight < pacer.concurrencyLimit)
        if (refused !== undefined) {
          const rps = shared(pacer) ? pacer.settings.rps : pacer.fallback.bucket.ratePerSecond
          return Effect.fail(
            new PacerQueueFull({
              message: `${refused} for provider ${provider} (${pacer.queue.size} queued, ${provider.toUpperCase()}_MAX_QUEUE=${pacer.maxQueue}); retry later`,
              retryAfterMs: Math.max(1000, pacer.pausedUntil - now(), (pacer.queue.size / rps) * 1000),
            }),
          )
        }
        const waiter: Waiter = {
          org,
          enqueuedAt: now(),
          dispatchedAt: 0,
          shared: false,
          wake: Deferred.makeUnsafe<void, Overloaded>(),
        }
        pacer.queue.push(org, waiter)
        let released = false
        const release = (error?: ProviderError) => {
          if (released) return
          released = true
          pacer.inFlight--
          countOrgSlot(pacer.inFlightByOrg, org, -1)
          const rateLimited = error?._tag === "RateLimited"
          const pauseMs = rateLimited ? clampPause(error.retryAfterMs ?? 1000) : 0
          if (rateLimited) {
            pacer.pausedUntil = Math.max(pacer.pausedUntil, now() + pauseMs)
            pacer.fallback.limit = Math.max(1, Math.floor(pacer.fallback.limit / 2))
          } else if (error === undefined && pacer.fallback.limit < pacer.fallback.maxLimit) {
            pacer.fallback.limit++
          }
          const outcome = rateLimited ? "rate_limited" : error === undefined ? "ok" : "none"
          if (waiter.shared) releaseShared(pacer, 1, outcome, pauseMs)
          else if (rateLimited) releaseShared(pacer, 0, "rate_limited", pauseMs)
          if (pacer.waitingForSlots || !shared(pacer)) wakeNow(pacer)
        }
        const abandon = () => {
          if (pacer.queue.remove(org, waiter)) released = true
          else release()
        }
        dispatch(pacer)
        const waited = Effect.sync(() => waiter.dispatchedAt - waiter.enqueuedAt)
        deadlines.after(config.pacerMaxWaitMs, () => {
          if (!pacer.queue.remove(org, waiter)) return
          released = true
          Deferred.doneUnsafe(
            waiter.wake,
            Effect.fail(
              new Overloaded({
                provider,
                message: `waited over ${config.pacerMaxWaitMs} ms (PACER_MAX_WAIT_MS) for provider ${provider}`,
              }),
            ),
          )
        })
        const dispatched: Ticket["dispatched"] = Deferred.await(waiter.wake).pipe(
          Effect.andThen(waited),
          Effect.onInterrupt(() => Effect.sync(abandon)),
        )
        const pause = (ms: number) => {
          const clamped = clampPause(ms)
          pacer.pausedUntil = Math.max(pacer.pausedUntil, now() + clamped)
          releaseShared(pacer, 0, "pause", clamped)
        }
        return Effect.succeed<Ticket>({ dispatched, release, abandon, pause })
      })

    const state = (): ReadonlyArray<PacerState> =>
      [...pacers.values()].map((pacer) => ({
        provider: pacer.name,
        tokens:
          Math.floor(
            (shared(pacer) ? (pacer.last?.tokens ?? pacer.settings.burst) : pacer.fallback.bucket.tokens) *
              100,
          ) / 100,
        inFlight: pacer.inFlight,
        queued: pacer.queue.size,
        concurrencyLimit: pacer.concurrencyLimit,
        pausedUntil: pacer.pausedUntil > now() ? Date.now() + (pacer.pausedUntil - now()) : null,
      }))

    /** Each provider's budget read now (one read-only script each), else the last one read. */
    const peek = (pacer: ProviderPacer) => {
      const t = now()
      const known = (): SharedBudgetState => ({
        provider: pacer.name,
        mode: shared(pacer) ? "shared" : "fallback",
        tokens: Math.floor((pacer.last?.tokens ?? pacer.settings.burst) * 100) / 100,
        inFlight: pacer.last?.inFlight ?? 0,
        concurrencyLimit: pacer.last?.limit ?? pacer.settings.concurrency,
        pausedUntil: pacer.pausedUntil > t ? Date.now() + (pacer.pausedUntil - t) : null,
        readAgoMs: pacer.last === undefined ? null : Math.round(t - pacer.last.at),
      })
      if (!redis.isUp()) return Effect.succeed(known())
      const { settings } = pacer
      return redis
        .run(
          pacerPeek,
          [pacer.keys.state, pacer.keys.slots, redis.replicasKey],
          [settings.rps, settings.burst, settings.concurrency],
        )
        .pipe(
          Effect.map((reply): SharedBudgetState => {
            const [tokens, inFlight, limit, pausedLeft] = reply as [string, number, number, number]
            return {
              ...known(),
              tokens: Math.floor(Number(tokens) * 100) / 100,
              inFlight,
              concurrencyLimit: limit,
              pausedUntil: pausedLeft > 0 ? Date.now() + pausedLeft : null,
              readAgoMs: 0,
            }
          }),
          Effect.catch(() => Effect.succeed(known())),
        )
    }

    const status = Effect.gen(function* () {
      const providers = yield* Effect.all([...pacers.values()].map(peek), { concurrency: "unbounded" })
      return {
        replicaId: redis.replicaId,
        leaseMs: redis.leaseMs,
        providers,
        cost: {
          roundTrips: cost.trips,
          meanMs: cost.trips === 0 ? 0 : Math.round((cost.totalMs / cost.trips) * 1000) / 1000,
          slotsPerTrip: cost.trips === 0 ? 0 : Math.round((cost.slots / cost.trips) * 100) / 100,
        },
      } satisfies SharedPacerStatus
    })

    return Context.make(Pacer, Pacer.of({ enqueue, state })).pipe(
      Context.add(SharedPacer, SharedPacer.of({ status })),
    )
  }),
)
