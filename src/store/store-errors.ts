import { Effect } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { StoreUnavailable } from "../domain/errors.ts"

/**
 * What a failed statement becomes: a typed, retryable `StoreUnavailable` (503), never a defect, so
 * every caller can release what it claimed and answer. The driver's text (host, port, SQL) goes to
 * the log only; the pool opens new connections by itself once the database is back.
 */
export const orStoreUnavailable =
  (operation: string) =>
  <A, E, R>(
    effect: Effect.Effect<A, E | SqlError, R>,
  ): Effect.Effect<A, Exclude<E, SqlError> | StoreUnavailable, R> =>
    Effect.catchTag(effect as Effect.Effect<A, SqlError, R>, "SqlError", (error) =>
      Effect.logWarning("store call failed", {
        operation,
        reason: error.reason._tag,
        error: error.message,
      }).pipe(
        Effect.andThen(Effect.fail(new StoreUnavailable({ message: "the store is unavailable; try again" }))),
      ),
    ) as Effect.Effect<A, Exclude<E, SqlError> | StoreUnavailable, R>
