import { Schema } from "effect"
import { errorCodes } from "./error-codes.ts"

/**
 * Every error a client can see. Each carries the HTTP status it is answered with (`httpApiStatus`)
 * and the stable machine-readable `code` of the `{"error":{"code","message"}}` body.
 */

export class UnknownProvider extends Schema.TaggedError<UnknownProvider>()(
  "UnknownProvider",
  { message: Schema.String },
  { httpApiStatus: errorCodes.unknown_provider.status },
) {
  readonly code = "unknown_provider"
  readonly status = errorCodes.unknown_provider.status
}

export class UnknownModel extends Schema.TaggedError<UnknownModel>()(
  "UnknownModel",
  { message: Schema.String },
  { httpApiStatus: errorCodes.unknown_model.status },
) {
  readonly code = "unknown_model"
  readonly status = errorCodes.unknown_model.status
}

export class ThreadNotFound extends Schema.TaggedError<ThreadNotFound>()(
  "ThreadNotFound",
  { message: Schema.String },
  { httpApiStatus: errorCodes.thread_not_found.status },
) {
  readonly code = "thread_not_found"
  readonly status = errorCodes.thread_not_found.status
  readonly retryable = errorCodes.thread_not_found.retryable
}

export class RequestNotFound extends Schema.TaggedError<RequestNotFound>()(
  "RequestNotFound",
  { message: Schema.String },
  { httpApiStatus: errorCodes.request_not_found.status },
) {
  readonly code = "request_not_found"
  readonly status = errorCodes.request_not_found.status
}

export class ContentTooLarge extends Schema.TaggedError<ContentTooLarge>()(
  "ContentTooLarge",
  { message: Schema.String },
  { httpApiStatus: errorCodes.content_too_large.status },
) {
  readonly code = "content_too_large"
  readonly status = errorCodes.content_too_large.status
}

/** An inline image larger than `MAX_IMAGE_BYTES` (decoded). */
export class ImageTooLarge extends Schema.TaggedError<ImageTooLarge>()(
  "ImageTooLarge",
  { message: Schema.String },
  { httpApiStatus: errorCodes.image_too_large.status },
) {
  readonly code = "image_too_large"
  readonly status = errorCodes.image_too_large.status
}

/**
 * Tool results that do not answer the thread's last reply: an id it did not call, a call answered
 * twice in one send, or a call left without a result (every provider wants each call answered).
 */
export class InvalidToolResult extends Schema.TaggedError<InvalidToolResult>()(
  "InvalidToolResult",
  { message: Schema.String },
  { httpApiStatus: errorCodes.invalid_tool_result.status },
) {
  readonly code = "invalid_tool_result"
  readonly status = errorCodes.invalid_tool_result.status
}

export class ProviderNotConfigured extends Schema.TaggedError<ProviderNotConfigured>()(
  "ProviderNotConfigured",
  { message: Schema.String },
  { httpApiStatus: errorCodes.provider_not_configured.status },
) {
  readonly code = "provider_not_configured"
  readonly status = errorCodes.provider_not_configured.status
}

/**
 * The store did not answer (the database went away, a pool connection broke): nothing about the
 * request was wrong, so the client may try again; the gateway reconnects by itself.
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()(
  "StoreUnavailable",
  { message: Schema.String },
  { httpApiStatus: errorCodes.store_unavailable.status },
) {
  readonly code = "store_unavailable"
  readonly status = errorCodes.store_unavailable.status
  readonly retryable = errorCodes.store_unavailable.retryable
}

/** A generation ran past `GENERATION_MAX_MS`: it is ended, its text so far kept. */
export class GenerationTimeout extends Schema.TaggedError<GenerationTimeout>()(
  "GenerationTimeout",
  { message: Schema.String },
  { httpApiStatus: errorCodes.generation_timeout.status },
) {
  readonly code = "generation_timeout"
  readonly status = errorCodes.generation_timeout.status
  readonly retryable = errorCodes.generation_timeout.retryable
}

/** A reply grew past `GENERATION_MAX_BYTES`: it is ended, its text so far kept. */
export class GenerationTooLarge extends Schema.TaggedError<GenerationTooLarge>()(
  "GenerationTooLarge",
  { message: Schema.String },
  { httpApiStatus: errorCodes.generation_too_large.status },
) {
  readonly code = "generation_too_large"
  readonly status = errorCodes.generation_too_large.status
  readonly retryable = errorCodes.generation_too_large.retryable
}

/** The gateway is stopping (SIGTERM): the reply so far is stored; try again, on this or another one. */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()(
  "ShuttingDown",
  { message: Schema.String },
  { httpApiStatus: errorCodes.shutting_down.status },
) {
  readonly code = "shutting_down"
  readonly status = errorCodes.shutting_down.status
  readonly retryable = errorCodes.shutting_down.retryable
}

/**
 * How a generation that another replica runs ended, as its relay said (engine/relay.ts): the code,
 * message and `retryable` of the error there; `replica_lost` when that replica stopped renewing its
 * lease mid-reply (killed or cut off).
 */
export class RelayedFailure extends Schema.TaggedError<RelayedFailure>()("RelayedFailure", {
  code: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
}) {
  get status(): number {
    return (errorCodes as Record<string, { readonly status: number }>)[this.code]?.status ?? 502
  }
}

/** A generation already feeds `MAX_LISTENERS_PER_GENERATION` streams. */
export class TooManyListeners extends Schema.TaggedError<TooManyListeners>()(
  "TooManyListeners",
  { message: Schema.String },
  { httpApiStatus: errorCodes.too_many_listeners.status },
) {
  readonly code = "too_many_listeners"
  readonly status = errorCodes.too_many_listeners.status
  readonly retryable = errorCodes.too_many_listeners.retryable
}

/** No API key, an unknown or a revoked one: the same answer for each, so none can be told apart. */
export class InvalidApiKey extends Schema.TaggedError<InvalidApiKey>()(
  "InvalidApiKey",
  { message: Schema.String },
  { httpApiStatus: errorCodes.invalid_api_key.status },
) {
  readonly code = "invalid_api_key"
  readonly status = errorCodes.invalid_api_key.status
}

/** An API key the admin API was asked about does not exist. */
export class KeyNotFound extends Schema.TaggedError<KeyNotFound>()(
  "KeyNotFound",
  { message: Schema.String },
  { httpApiStatus: errorCodes.key_not_found.status },
) {
  readonly code = "key_not_found"
  readonly status = errorCodes.key_not_found.status
}

/** The generation a waiting request followed was stopped for everyone (`?scope=generation`). */
export class RequestCancelled extends Schema.TaggedError<RequestCancelled>()(
  "RequestCancelled",
  { message: Schema.String },
  { httpApiStatus: errorCodes.cancelled.status },
) {
  readonly code = "cancelled"
  readonly status = errorCodes.cancelled.status
}

/** An `Idempotency-Key` reused with a different body. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()(
  "IdempotencyConflict",
  { message: Schema.String },
  { httpApiStatus: errorCodes.idempotency_conflict.status },
) {
  readonly code = "idempotency_conflict"
  readonly status = errorCodes.idempotency_conflict.status
}

/** A turn sent as the answer to a message (`parent_message_id`) the thread has moved past. */
export class ThreadMoved extends Schema.TaggedError<ThreadMoved>()(
  "ThreadMoved",
  { message: Schema.String },
  { httpApiStatus: errorCodes.thread_moved.status },
) {
  readonly code = "thread_moved"
  readonly status = errorCodes.thread_moved.status
}

/** The pacer's wait queue for a provider is full: nothing was stored and nothing sent upstream. */
export class PacerQueueFull extends Schema.TaggedError<PacerQueueFull>()(
  "PacerQueueFull",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: errorCodes.rate_limited.status },
) {
  readonly code = "rate_limited"
  readonly status = errorCodes.rate_limited.status
  readonly retryable = errorCodes.rate_limited.retryable
}

/** A key's `requests_per_minute` is used up for the rolling minute: nothing was stored or sent. */
export class KeyRateLimited extends Schema.TaggedError<KeyRateLimited>()(
  "KeyRateLimited",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: errorCodes.key_rate_limited.status },
) {
  readonly code = "key_rate_limited"
  readonly status = errorCodes.key_rate_limited.status
  readonly retryable = errorCodes.key_rate_limited.retryable
}

/** A key already has `concurrent_requests` streams and waits in flight. */
export class KeyConcurrencyLimited extends Schema.TaggedError<KeyConcurrencyLimited>()(
  "KeyConcurrencyLimited",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: errorCodes.key_concurrency_limited.status },
) {
  readonly code = "key_concurrency_limited"
  readonly status = errorCodes.key_concurrency_limited.status
  readonly retryable = errorCodes.key_concurrency_limited.retryable
}

/** A key's `tokens_per_day` is used up until the next UTC midnight. */
export class KeyBudgetExhausted extends Schema.TaggedError<KeyBudgetExhausted>()(
  "KeyBudgetExhausted",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: errorCodes.key_budget_exhausted.status },
) {
  readonly code = "key_budget_exhausted"
  readonly status = errorCodes.key_budget_exhausted.status
  readonly retryable = errorCodes.key_budget_exhausted.retryable
}

export type KeyLimitError = KeyRateLimited | KeyConcurrencyLimited | KeyBudgetExhausted
