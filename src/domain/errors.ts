import { Schema } from "effect"

/**
 * Every error a client can see. Each carries the HTTP status it is answered with (`httpApiStatus`)
 * and the stable machine-readable `code` of the `{"error":{"code","message"}}` body.
 */

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()(
  "InvalidRequest",
  { message: Schema.String },
  { httpApiStatus: 400 },
) {
  readonly code = "invalid_request"
  readonly status = 400
}

export class MissingOrgId extends Schema.TaggedError<MissingOrgId>()(
  "MissingOrgId",
  { message: Schema.String },
  { httpApiStatus: 400 },
) {
  readonly code = "missing_org_id"
  readonly status = 400
}

export class UnknownProvider extends Schema.TaggedError<UnknownProvider>()(
  "UnknownProvider",
  { message: Schema.String },
  { httpApiStatus: 400 },
) {
  readonly code = "unknown_provider"
  readonly status = 400
}

export class UnknownModel extends Schema.TaggedError<UnknownModel>()(
  "UnknownModel",
  { message: Schema.String },
  { httpApiStatus: 400 },
) {
  readonly code = "unknown_model"
  readonly status = 400
}

export class ThreadNotFound extends Schema.TaggedError<ThreadNotFound>()(
  "ThreadNotFound",
  { message: Schema.String },
  { httpApiStatus: 404 },
) {
  readonly code = "thread_not_found"
  readonly status = 404
  readonly retryable = false
}

export class RequestNotFound extends Schema.TaggedError<RequestNotFound>()(
  "RequestNotFound",
  { message: Schema.String },
  { httpApiStatus: 404 },
) {
  readonly code = "request_not_found"
  readonly status = 404
}

export class ContentTooLarge extends Schema.TaggedError<ContentTooLarge>()(
  "ContentTooLarge",
  { message: Schema.String },
  { httpApiStatus: 413 },
) {
  readonly code = "content_too_large"
  readonly status = 413
}

export class ProviderNotConfigured extends Schema.TaggedError<ProviderNotConfigured>()(
  "ProviderNotConfigured",
  { message: Schema.String },
  { httpApiStatus: 503 },
) {
  readonly code = "provider_not_configured"
  readonly status = 503
}

/**
 * The store did not answer (the database went away, a pool connection broke): nothing about the
 * request was wrong, so the client may try again; the gateway reconnects by itself.
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()(
  "StoreUnavailable",
  { message: Schema.String },
  { httpApiStatus: 503 },
) {
  readonly code = "store_unavailable"
  readonly status = 503
  readonly retryable = true
}

/** A generation ran past `GENERATION_MAX_MS`: it is ended, its text so far kept. */
export class GenerationTimeout extends Schema.TaggedError<GenerationTimeout>()(
  "GenerationTimeout",
  { message: Schema.String },
  { httpApiStatus: 504 },
) {
  readonly code = "generation_timeout"
  readonly status = 504
  readonly retryable = false
}

/** A reply grew past `GENERATION_MAX_BYTES`: it is ended, its text so far kept. */
export class GenerationTooLarge extends Schema.TaggedError<GenerationTooLarge>()(
  "GenerationTooLarge",
  { message: Schema.String },
  { httpApiStatus: 502 },
) {
  readonly code = "generation_too_large"
  readonly status = 502
  readonly retryable = false
}

/** The gateway is stopping (SIGTERM): the reply so far is stored; try again, on this or another one. */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()(
  "ShuttingDown",
  { message: Schema.String },
  { httpApiStatus: 503 },
) {
  readonly code = "shutting_down"
  readonly status = 503
  readonly retryable = true
}

/** A generation already feeds `MAX_LISTENERS_PER_GENERATION` streams. */
export class TooManyListeners extends Schema.TaggedError<TooManyListeners>()(
  "TooManyListeners",
  { message: Schema.String },
  { httpApiStatus: 429 },
) {
  readonly code = "too_many_listeners"
  readonly status = 429
  readonly retryable = true
}

/** No API key, an unknown or a revoked one: the same answer for each, so none can be told apart. */
export class InvalidApiKey extends Schema.TaggedError<InvalidApiKey>()(
  "InvalidApiKey",
  { message: Schema.String },
  { httpApiStatus: 401 },
) {
  readonly code = "invalid_api_key"
  readonly status = 401
}

/** An API key the admin API was asked about does not exist. */
export class KeyNotFound extends Schema.TaggedError<KeyNotFound>()(
  "KeyNotFound",
  { message: Schema.String },
  { httpApiStatus: 404 },
) {
  readonly code = "key_not_found"
  readonly status = 404
}

/** Errors of the gateway's own making (the request was accepted but could not be stored, …). */
export class Internal extends Schema.TaggedError<Internal>()(
  "Internal",
  { message: Schema.String },
  { httpApiStatus: 500 },
) {
  readonly code = "internal_error"
  readonly status = 500
}

export type RequestError =
  | InvalidRequest
  | MissingOrgId
  | UnknownProvider
  | UnknownModel
  | ThreadNotFound
  | RequestNotFound
  | ContentTooLarge
  | ProviderNotConfigured

/** The generation a waiting request followed was stopped for everyone (`?scope=generation`). */
export class RequestCancelled extends Schema.TaggedError<RequestCancelled>()(
  "RequestCancelled",
  { message: Schema.String },
  { httpApiStatus: 409 },
) {
  readonly code = "cancelled"
  readonly status = 409
}

/** An `Idempotency-Key` reused with a different body. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()(
  "IdempotencyConflict",
  { message: Schema.String },
  { httpApiStatus: 409 },
) {
  readonly code = "idempotency_conflict"
  readonly status = 409
}

/** A turn sent as the answer to a message (`parent_message_id`) the thread has moved past. */
export class ThreadMoved extends Schema.TaggedError<ThreadMoved>()(
  "ThreadMoved",
  { message: Schema.String },
  { httpApiStatus: 409 },
) {
  readonly code = "thread_moved"
  readonly status = 409
}

/** The pacer's wait queue for a provider is full: nothing was stored and nothing sent upstream. */
export class PacerQueueFull extends Schema.TaggedError<PacerQueueFull>()(
  "PacerQueueFull",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: 429 },
) {
  readonly code = "rate_limited"
  readonly status = 429
  readonly retryable = true
}

/** A key's `requests_per_minute` is used up for the rolling minute: nothing was stored or sent. */
export class KeyRateLimited extends Schema.TaggedError<KeyRateLimited>()(
  "KeyRateLimited",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: 429 },
) {
  readonly code = "key_rate_limited"
  readonly status = 429
  readonly retryable = true
}

/** A key already has `concurrent_requests` streams and waits in flight. */
export class KeyConcurrencyLimited extends Schema.TaggedError<KeyConcurrencyLimited>()(
  "KeyConcurrencyLimited",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: 429 },
) {
  readonly code = "key_concurrency_limited"
  readonly status = 429
  readonly retryable = true
}

/** A key's `tokens_per_day` is used up until the next UTC midnight. */
export class KeyBudgetExhausted extends Schema.TaggedError<KeyBudgetExhausted>()(
  "KeyBudgetExhausted",
  { message: Schema.String, retryAfterMs: Schema.Number },
  { httpApiStatus: 429 },
) {
  readonly code = "key_budget_exhausted"
  readonly status = 429
  readonly retryable = true
}

export type KeyLimitError = KeyRateLimited | KeyConcurrencyLimited | KeyBudgetExhausted
