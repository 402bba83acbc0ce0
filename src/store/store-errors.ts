import { Effect } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { StoreUnavailable } from "../domain/errors.ts"

/**
 * The longest a store call may take. A database that stops answering (a stalled connection, no
 * reset) would otherwise hold a request, or a turn's uninterruptible start, until TCP gives up.
 */
export const storeCallDeadlineMs = 5_000

/**
 * What a failed statement becomes: a typed, retryable `StoreUnavailable` (503), never a defect, so
 * every caller can release what it claimed and answer. The driver's text (host, port, SQL) goes to
 * the log only; the pool opens new connections by itself once the database is back. A call past
 * `storeCallDeadlineMs` counts as failed.
 */
const unavailable = new StoreUnavailable({ message: "the store is unavailable; try again" })

export const orStoreUnavailable =
  (operation: string) =>
  <A, E, R>(
    effect: Effect.Effect<A, E | SqlError, R>,
  ): Effect.Effect<A, Exclude<E, SqlError> | StoreUnavailable, R> =>
    (effect as Effect.Effect<A, SqlError, R>).pipe(
      Effect.timeoutOrElse({
        duration: storeCallDeadlineMs,
        orElse: () =>
          Effect.logWarning("store call timed out", { operation, after_ms: storeCallDeadlineMs }).pipe(
            Effect.andThen(Effect.fail(unavailable)),
          ),
      }),
      Effect.catchTag("SqlError", (error) =>
        Effect.logWarning("store call failed", {
          operation,
          reason: error.reason._tag,
          error: error.message,
        }).pipe(Effect.andThen(Effect.fail(unavailable))),
      ),
    ) as Effect.Effect<A, Exclude<E, SqlError> | StoreUnavailable, R>
