import { Context, Deferred, Effect, Layer } from "effect"
import { AppConfig, type ProviderName, providerNames } from "../config.ts"
import { PacerQueueFull } from "../domain/errors.ts"
import { Overloaded, type ProviderError } from "../domain/provider-errors.ts"
import { makeDeadlines } from "./deadlines.ts"
import { FairQueue } from "./fair-queue.ts"
import { makeBucket, msUntilToken, type TokenBucket, tryTake } from "./token-bucket.ts"

/** A request's place in a provider's pacer: wait for dispatch, then release when done. */
export interface Ticket {
  /** Resolves when the request may call upstream, with how long it waited (ms). */
  readonly dispatched: Effect.Effect<number, Overloaded>
  /** Gives the slot back; a RateLimited error pauses the provider and halves its concurrency. */
  readonly release: (error?: ProviderError) => void
  /** Leaves the queue, or gives the slot back if it was already handed out. */
  readonly abandon: () => void
  /** The provider said a limit is used up: hold its dispatch for `ms` (concurrency unchanged). */
  readonly pause: (ms: number) => void
}

export interface PacerState {
  readonly provider: ProviderName
  readonly tokens: number
  readonly inFlight: number
  readonly queued: number
  readonly concurrencyLimit: number
  readonly pausedUntil: number | null
}

interface Waiter {
  readonly org: string
  readonly enqueuedAt: number
  /** The wait ends when the slot is handed out, not when the caller gets round to noticing. */
  dispatchedAt: number
  /** Done when the slot is handed out, or failed when the wait went past `PACER_MAX_WAIT_MS`. */
  readonly wake: Deferred.Deferred<void, Overloaded>
}

interface ProviderPacer {
  readonly name: ProviderName
  readonly bucket: TokenBucket
  readonly maxConcurrency: number
  readonly maxQueue: number
  concurrencyLimit: number
  inFlight: number
  pausedUntil: number
  readonly queue: FairQueue<Waiter>
  /** Slots handed out, by org (an org leaves the map when it holds none). */
  readonly inFlightByOrg: Map<string, number>
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * Node's longest timer: a `setTimeout` past it fires after 1 ms, which would make `dispatch` spin
 * on a far-off pause instead of sleeping through it.
 */
export const maxTimerMs = 2 ** 31 - 1

/** A ticket outside any pacer, dispatched at once: for tests of what runs behind the pacer. */
export const unpacedTicket: Ticket = {
  dispatched: Effect.succeed(0),
  release: () => {},
  abandon: () => {},
  pause: () => {},
}

/** What `inFlightShare` and `refusal` read of a pacer (the local one and the shared one's local half). */
export interface FairState {
  readonly queue: FairQueue<{ readonly org: string }>
  readonly inFlightByOrg: ReadonlyMap<string, number>
  readonly maxQueue: number
  readonly concurrencyLimit: number
}

/** Counts a slot an org takes (+1) or gives back (-1); an org with none is dropped from the map. */
export const countOrgSlot = (inFlightByOrg: Map<string, number>, org: string, delta: 1 | -1) => {
  const held = (inFlightByOrg.get(org) ?? 0) + delta
  if (held <= 0) inFlightByOrg.delete(org)
  else inFlightByOrg.set(org, held)
}

/**
 * An org's share of the in-flight slots: the limit split between the orgs in flight or waiting.
 * Dispatch prefers an org under its share, so one org's long streams do not keep taking every slot
 * that frees while another org waits.
 */
export const inFlightShare = (pacer: FairState) => {
  let orgs = pacer.queue.orgCount
  for (const org of pacer.inFlightByOrg.keys()) if (pacer.queue.countOf(org) === 0) orgs++
  return Math.max(1, Math.ceil(pacer.concurrencyLimit / Math.max(1, orgs)))
}

/**
 * The fair share of the queue (README, "Fair share"): with n orgs waiting (counting this one), an
 * org may hold at most max(1, ceil(MAX_QUEUE / n)) places. A full queue still takes an org that has
 * no place yet, so a newcomer is never refused because of another org's burst; that overflow is
 * bounded: never more than 2 × MAX_QUEUE waiters in all. Nobody already queued is pushed out (a
 * queued request may already be stored). `slotFree`: nobody waits and a slot is free now.
 */
export const refusal = (pacer: FairState, org: string, slotFree: boolean): string | undefined => {
  if (pacer.queue.size === 0 && slotFree) return undefined
  const held = pacer.queue.countOf(org)
  const orgs = pacer.queue.orgCount + (held === 0 ? 1 : 0)
  const share = Math.max(1, Math.ceil(pacer.maxQueue / orgs))
  if (pacer.queue.size >= 2 * pacer.maxQueue) return "too many requests queued"
  if (held >= share) {
    return orgs > 1
      ? `this org holds its share of the queue (${held} of ${share}, ${orgs} orgs waiting)`
      : "too many requests queued"
  }
  if (pacer.queue.size >= pacer.maxQueue && held > 0) return "too many requests queued"
  return undefined
}

/**
 * Per provider: a token bucket (`<P>_RPS`, `<P>_BURST`) and a concurrency limit
 * (`<P>_CONCURRENCY`) in front of every upstream call, with a bounded wait queue (`<P>_MAX_QUEUE`,
 * `PACER_MAX_WAIT_MS`) served round-robin by org, each org held to its fair share of the queue and,
 * while others wait, of the in-flight slots (see `refuse` and `inFlightShare`). It adapts: a RateLimited answer pauses dispatch
 * for the provider's retry delay (at most `UPSTREAM_MAX_PAUSE_MS`) and halves concurrency, which
 * then grows back by one per success.
 */
export class Pacer extends Context.Service<
  Pacer,
  {
    /** Takes a place in the queue, or fails at once when it is full. */
    readonly enqueue: (provider: ProviderName, org: string) => Effect.Effect<Ticket, PacerQueueFull>
    readonly state: () => ReadonlyArray<PacerState>
  }
>()("dac/engine/Pacer") {
  static readonly layer = Layer.effect(
    Pacer,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const now = () => performance.now()
      const pacers = new Map<ProviderName, ProviderPacer>()
      // A provider's hint (`retry-after: 86400`, `x-ratelimit-reset-requests: 999h`, …) holds its
      // dispatch for at most UPSTREAM_MAX_PAUSE_MS: a bogus or hostile hint cannot wedge it.
      const clampPause = (ms: number) =>
        Number.isFinite(ms) ? Math.min(Math.max(0, ms), config.upstreamMaxPauseMs) : config.upstreamMaxPauseMs
      // Every waiter's PACER_MAX_WAIT_MS on one timer, not a racing sleep fiber per request.
      const deadlines = makeDeadlines(now)
      for (const name of providerNames) {
        const settings = config.providers[name]
        pacers.set(name, {
          name,
          bucket: makeBucket(settings.rps, settings.burst, now()),
          maxConcurrency: settings.concurrency,
          maxQueue: settings.maxQueue,
          concurrencyLimit: settings.concurrency,
          inFlight: 0,
          pausedUntil: 0,
          queue: new FairQueue<Waiter>(),
          inFlightByOrg: new Map(),
          timer: undefined,
        })
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const pacer of pacers.values()) if (pacer.timer) clearTimeout(pacer.timer)
          deadlines.clear()
        }),
      )

      // Hands out slots while the bucket, the concurrency limit and any pause allow; otherwise
      // sleeps until the moment the next slot can exist.
      const dispatch = (pacer: ProviderPacer) => {
        while (pacer.queue.size > 0 && pacer.inFlight < pacer.concurrencyLimit) {
          const t = now()
          const wait = Math.max(pacer.pausedUntil - t, msUntilToken(pacer.bucket, t))
          if (wait > 0) {
            if (pacer.timer === undefined) {
              pacer.timer = setTimeout(
                () => {
                  pacer.timer = undefined
                  dispatch(pacer)
                },
                Math.min(Math.ceil(wait), maxTimerMs),
              )
            }
            return
          }
          tryTake(pacer.bucket, t)
          const share = inFlightShare(pacer)
          const waiter = pacer.queue.shift((org) => (pacer.inFlightByOrg.get(org) ?? 0) < share)!
          waiter.dispatchedAt = t
          pacer.inFlight++
          countOrgSlot(pacer.inFlightByOrg, waiter.org, 1)
          Deferred.doneUnsafe(waiter.wake, Effect.void)
        }
      }

      const enqueue = (provider: ProviderName, org: string) =>
        Effect.suspend(() => {
          const pacer = pacers.get(provider)!
          const refused = refusal(pacer, org, pacer.inFlight < pacer.concurrencyLimit)
          if (refused !== undefined) {
            const retryAfterMs = Math.max(
              1000,
              pacer.pausedUntil - now(),
              (pacer.queue.size / pacer.bucket.ratePerSecond) * 1000,
            )
            return Effect.fail(
              new PacerQueueFull({
                message: `${refused} for provider ${provider} (${pacer.queue.size} queued, ${provider.toUpperCase()}_MAX_QUEUE=${pacer.maxQueue}); retry later`,
                retryAfterMs,
              }),
            )
          }
          const waiter: Waiter = {
            org,
            enqueuedAt: now(),
            dispatchedAt: 0,
            wake: Deferred.makeUnsafe<void, Overloaded>(),
          }
          pacer.queue.push(org, waiter)
          let released = false
          const release = (error?: ProviderError) => {
            if (released) return
            released = true
            pacer.inFlight--
            countOrgSlot(pacer.inFlightByOrg, org, -1)
            if (error?._tag === "RateLimited") {
              pacer.pausedUntil = Math.max(pacer.pausedUntil, now() + clampPause(error.retryAfterMs ?? 1000))
              pacer.concurrencyLimit = Math.max(1, Math.floor(pacer.concurrencyLimit / 2))
            } else if (error === undefined && pacer.concurrencyLimit < pacer.maxConcurrency) {
              pacer.concurrencyLimit++
            }
            dispatch(pacer)
          }
          const abandon = () => {
            if (pacer.queue.remove(org, waiter)) released = true
            else release()
          }
          dispatch(pacer)
          const waited = Effect.sync(() => waiter.dispatchedAt - waiter.enqueuedAt)
          let dispatched: Ticket["dispatched"]
          if (Deferred.isDoneUnsafe(waiter.wake)) {
            // The usual case, a free slot at once: nothing to wait for, no deadline to keep.
            dispatched = waited
          } else {
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
            dispatched = Deferred.await(waiter.wake).pipe(
              Effect.andThen(waited),
              // Leaving the queue early (client gone) must not leak the slot it may just have got.
              Effect.onInterrupt(() => Effect.sync(abandon)),
            )
          }
          const pause = (ms: number) => {
            pacer.pausedUntil = Math.max(pacer.pausedUntil, now() + clampPause(ms))
          }
          return Effect.succeed<Ticket>({ dispatched, release, abandon, pause })
        })

      const state = () =>
        [...pacers.values()].map((pacer) => ({
          provider: pacer.name,
          tokens: Math.floor(pacer.bucket.tokens * 100) / 100,
          inFlight: pacer.inFlight,
          queued: pacer.queue.size,
          concurrencyLimit: pacer.concurrencyLimit,
          pausedUntil: pacer.pausedUntil > now() ? Date.now() + (pacer.pausedUntil - now()) : null,
        }))

      return Pacer.of({ enqueue, state })
    }),
  )
}
