import { Context, Effect, Layer } from "effect"
import {
  KeyBudgetExhausted,
  KeyConcurrencyLimited,
  type KeyLimitError,
  KeyRateLimited,
} from "../domain/errors.ts"
import type { Caller, KeyId } from "../domain/keys.ts"

/** A request a key's limits let in: it holds a concurrency slot until `release`. */
export interface KeyAdmission {
  /** Gives the concurrency slot back; idempotent (every way a request ends may call it). */
  readonly release: () => void
  /** Counts tokens the provider reported for this request against the key's day. */
  readonly charge: (tokens: number) => void
}

/** A key's counters right now (for tests and diagnostics). */
export interface KeyUsage {
  readonly requestsLastMinute: number
  readonly inFlight: number
  readonly tokensToday: number
}

const dayMs = 86_400_000
const windowSeconds = 60

interface KeyState {
  /** Requests admitted in each second of the rolling minute, indexed by (epoch second % 60). */
  readonly perSecond: Array<number>
  /** The epoch second `perSecond` was last brought up to date at. */
  lastSecond: number
  /** The sum of `perSecond`. */
  minuteCount: number
  inFlight: number
  /** The UTC day (epoch day number) `tokens` counts for. */
  day: number
  tokens: number
}

/** The admission of a caller without limits: nothing to hold or count. */
export const noLimit: KeyAdmission = { release: () => {}, charge: () => {} }

/**
 * The counters behind KeyLimiter, on a clock of epoch milliseconds (a test hands its own). One
 * entry per key that has limits; a key's entry is small (60 counters), kept while the process runs.
 */
export const makeKeyLimits = (now: () => number = Date.now) => {
  const states = new Map<KeyId, KeyState>()

  /** The key's state with the rolling minute moved up to `second` and the day to `day`. */
  const stateOf = (keyId: KeyId, second: number, day: number): KeyState => {
    let state = states.get(keyId)
    if (state === undefined) {
      state = {
        perSecond: new Array<number>(windowSeconds).fill(0),
        lastSecond: second,
        minuteCount: 0,
        inFlight: 0,
        day,
        tokens: 0,
      }
      states.set(keyId, state)
    }
    if (second - state.lastSecond >= windowSeconds) {
      state.perSecond.fill(0)
      state.minuteCount = 0
    } else {
      for (let s = state.lastSecond + 1; s <= second; s++) {
        state.minuteCount -= state.perSecond[s % windowSeconds]!
        state.perSecond[s % windowSeconds] = 0
      }
    }
    state.lastSecond = Math.max(state.lastSecond, second)
    if (day !== state.day) {
      state.day = day
      state.tokens = 0
    }
    return state
  }

  /** When enough of the oldest seconds leave the window for one more request under `limit`. */
  const msUntilRoom = (state: KeyState, limit: number, t: number) => {
    let freed = 0
    for (let k = 0; k < windowSeconds; k++) {
      const s = state.lastSecond - windowSeconds + 1 + k
      freed += state.perSecond[((s % windowSeconds) + windowSeconds) % windowSeconds]!
      if (state.minuteCount - freed < limit) return Math.max(1, (s + windowSeconds) * 1000 - t)
    }
    return windowSeconds * 1000
  }

  const admit = (caller: Caller): KeyAdmission | KeyLimitError => {
    const { keyId, limits } = caller
    if (keyId === null) return noLimit
    const rpm = limits.requests_per_minute
    const concurrent = limits.concurrent_requests
    const budget = limits.tokens_per_day
    if (rpm === undefined && concurrent === undefined && budget === undefined) return noLimit
    const t = now()
    const second = Math.floor(t / 1000)
    const day = Math.floor(t / dayMs)
    const state = stateOf(keyId, second, day)
    // The day's budget first: it is the longest wait, and the one a client must hear about.
    if (budget !== undefined && state.tokens >= budget) {
      return new KeyBudgetExhausted({
        message: `this key used its ${budget} tokens for today (tokens_per_day, UTC); it resets at 00:00 UTC`,
        retryAfterMs: (day + 1) * dayMs - t,
      })
    }
    if (rpm !== undefined && state.minuteCount >= rpm) {
      return new KeyRateLimited({
        message: `this key made ${state.minuteCount} requests in the last minute (requests_per_minute=${rpm})`,
        retryAfterMs: msUntilRoom(state, rpm, t),
      })
    }
    if (concurrent !== undefined && state.inFlight >= concurrent) {
      return new KeyConcurrencyLimited({
        message: `this key has ${state.inFlight} requests in flight (concurrent_requests=${concurrent})`,
        // A slot frees when a request ends, which no clock predicts: a second is a fair retry.
        retryAfterMs: 1000,
      })
    }
    state.perSecond[second % windowSeconds]!++
    state.minuteCount++
    state.inFlight++
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        state.inFlight--
      },
      charge: (tokens) => {
        if (!(tokens > 0)) return
        const today = Math.floor(now() / dayMs)
        if (today !== state.day) {
          state.day = today
          state.tokens = 0
        }
        state.tokens += tokens
      },
    }
  }

  const usage = (keyId: KeyId): KeyUsage => {
    const t = now()
    const state = stateOf(keyId, Math.floor(t / 1000), Math.floor(t / dayMs))
    return { requestsLastMinute: state.minuteCount, inFlight: state.inFlight, tokensToday: state.tokens }
  }

  return { admit, usage }
}

/**
 * Per-key limits (`Caller.limits`), enforced in the engine before anything is stored or queued:
 * `requests_per_minute` (a rolling minute, in one-second steps), `concurrent_requests` (streams and
 * waits in flight: the slot is held from the turn's start until its response or stream ends) and
 * `tokens_per_day` (input + output as the provider reports them, per UTC day; a reply under way
 * when the budget runs out finishes, the next request is refused). Callers without a key
 * (`AUTH_MODE=header`) are never limited.
 *
 * The counters are in memory, per gateway process: they start over on a restart and each replica
 * counts on its own (a later issue moves them to Redis). No database round trip per request.
 */
export class KeyLimiter extends Context.Service<
  KeyLimiter,
  {
    /** Lets the request in (taking a concurrency slot) or says which limit it is over. */
    readonly admit: (caller: Caller) => Effect.Effect<KeyAdmission, KeyLimitError>
    readonly usage: (keyId: KeyId) => KeyUsage
  }
>()("dac/engine/KeyLimiter") {
  static readonly layerWithClock = (now: () => number) =>
    Layer.sync(KeyLimiter, () => {
      const limits = makeKeyLimits(now)
      return KeyLimiter.of({
        admit: (caller) =>
          Effect.suspend(() => {
            const admitted = limits.admit(caller)
            return "_tag" in admitted ? Effect.fail(admitted) : Effect.succeed(admitted)
          }),
        usage: limits.usage,
      })
    })

  static readonly layer = KeyLimiter.layerWithClock(Date.now)
}
