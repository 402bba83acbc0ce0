import { Effect } from "effect"
import type { UpstreamTimeouts } from "../config.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import type { EventListener } from "./provider.ts"

/** First backoff step when the provider gave no hint; doubles per attempt, up to the cap. */
const baseDelayMs = 250

/**
 * How long to wait before attempt `attempt + 1`, or `undefined` to give up. A provider's own hint
 * is obeyed exactly; a hint longer than the cap means "not within this request", so the error
 * (with its `retryAfterMs`) goes to the caller at once instead of a retry the provider asked us
 * not to make. Without a hint: exponential backoff with jitter, capped.
 */
export const retryDelayMs = (
  error: ProviderError,
  attempt: number,
  policy: Pick<UpstreamTimeouts, "maxAttempts" | "maxRetryDelayMs">,
  random: () => number = Math.random,
): number | undefined => {
  if (!error.retryable || attempt >= policy.maxAttempts) return undefined
  if (error.retryAfterMs !== undefined) {
    return error.retryAfterMs <= policy.maxRetryDelayMs ? error.retryAfterMs : undefined
  }
  const ceiling = Math.min(policy.maxRetryDelayMs, baseDelayMs * 2 ** (attempt - 1))
  return Math.round(ceiling * (0.5 + random() / 2))
}

/**
 * Runs `attempt` again after a retryable failure, but only while it has emitted nothing: every
 * adapter call starts with FirstByte, so "nothing emitted" is exactly "no byte of the reply
 * yet". Once a byte went downstream a failure is final, whatever it is.
 */
export const retryBeforeFirstByte = (
  attempt: (onEvent: EventListener) => Effect.Effect<void, ProviderError>,
  onEvent: EventListener,
  policy: Pick<UpstreamTimeouts, "maxAttempts" | "maxRetryDelayMs">,
): Effect.Effect<void, ProviderError> => {
  let started = false
  const listener: EventListener = (event) => {
    started = true
    onEvent(event)
  }
  const run = (n: number): Effect.Effect<void, ProviderError> =>
    Effect.catch(attempt(listener), (error) => {
      const delay = started ? undefined : retryDelayMs(error, n, policy)
      if (delay === undefined) return Effect.fail(error)
      return Effect.logWarning("retrying upstream request", {
        provider: error.provider,
        error: error._tag,
        message: error.message,
        ...(error.detail === undefined ? {} : { detail: error.detail }),
        attempt: n,
        delayMs: delay,
      }).pipe(Effect.andThen(Effect.sleep(delay)), Effect.andThen(Effect.suspend(() => run(n + 1))))
    })
  return Effect.suspend(() => {
    started = false
    return run(1)
  })
}
