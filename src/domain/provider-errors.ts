import { Schema } from "effect"

/**
 * What can go wrong with an upstream call, as typed errors. `retryable` says whether trying again
 * (before any byte reached the client) can help; `retryAfterMs` is the provider's own hint.
 * The client sees each through `status` and `code`.
 */
const fields = {
  provider: Schema.String,
  message: Schema.String,
  retryAfterMs: Schema.optional(Schema.Number),
  /**
   * What only the logs may see (a socket error's text: addresses, ports). `message` is what the
   * client is told; no HTTP body or stream event ever carries `detail`.
   */
  detail: Schema.optional(Schema.String),
}

export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", fields, {
  httpApiStatus: 503,
}) {
  readonly code = "upstream_rate_limited"
  readonly status = 503
  readonly retryable = true
}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", fields, {
  httpApiStatus: 502,
}) {
  readonly code = "upstream_unauthorized"
  readonly status = 502
  readonly retryable = false
}

export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", fields, {
  httpApiStatus: 400,
}) {
  readonly code = "upstream_bad_request"
  readonly status = 400
  readonly retryable = false
}

export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", fields, {
  httpApiStatus: 503,
}) {
  readonly code = "upstream_overloaded"
  readonly status = 503
  readonly retryable = true
}

export class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", fields, {
  httpApiStatus: 502,
}) {
  readonly code = "upstream_error"
  readonly status = 502
  readonly retryable = true
}

/** `phase` says which wait ran out: the connection, the first byte, or the gap between two chunks. */
export class Timeout extends Schema.TaggedError<Timeout>()(
  "Timeout",
  { ...fields, phase: Schema.Literals(["connect", "first_byte", "idle"]) },
  { httpApiStatus: 504 },
) {
  readonly code = "upstream_timeout"
  readonly status = 504
  readonly retryable = true
}

export class NetworkError extends Schema.TaggedError<NetworkError>()("NetworkError", fields, {
  httpApiStatus: 502,
}) {
  readonly code = "upstream_unreachable"
  readonly status = 502
  readonly retryable = true
}

/** The stream ended (or the provider sent an error event) after a 200, before its finish event. */
export class StreamFailed extends Schema.TaggedError<StreamFailed>()("StreamFailed", fields, {
  httpApiStatus: 502,
}) {
  readonly code = "upstream_stream_error"
  readonly status = 502
  readonly retryable = false
}

export type ProviderError =
  | RateLimited
  | Unauthorized
  | BadRequest
  | Overloaded
  | UpstreamError
  | Timeout
  | NetworkError
  | StreamFailed

export const ProviderError = Schema.Union([
  RateLimited,
  Unauthorized,
  BadRequest,
  Overloaded,
  UpstreamError,
  Timeout,
  NetworkError,
  StreamFailed,
])
