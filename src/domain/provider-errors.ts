import { Schema } from "effect"
import { errorCodes } from "./error-codes.ts"

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
  httpApiStatus: errorCodes.upstream_rate_limited.status,
}) {
  readonly code = "upstream_rate_limited"
  readonly status = errorCodes.upstream_rate_limited.status
  readonly retryable = errorCodes.upstream_rate_limited.retryable
}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", fields, {
  httpApiStatus: errorCodes.upstream_unauthorized.status,
}) {
  readonly code = "upstream_unauthorized"
  readonly status = errorCodes.upstream_unauthorized.status
  readonly retryable = errorCodes.upstream_unauthorized.retryable
}

export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", fields, {
  httpApiStatus: errorCodes.upstream_bad_request.status,
}) {
  readonly code = "upstream_bad_request"
  readonly status = errorCodes.upstream_bad_request.status
  readonly retryable = errorCodes.upstream_bad_request.retryable
}

export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", fields, {
  httpApiStatus: errorCodes.upstream_overloaded.status,
}) {
  readonly code = "upstream_overloaded"
  readonly status = errorCodes.upstream_overloaded.status
  readonly retryable = errorCodes.upstream_overloaded.retryable
}

export class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", fields, {
  httpApiStatus: errorCodes.upstream_error.status,
}) {
  readonly code = "upstream_error"
  readonly status = errorCodes.upstream_error.status
  readonly retryable = errorCodes.upstream_error.retryable
}

/** `phase` says which wait ran out: the connection, the first byte, or the gap between two chunks. */
export class Timeout extends Schema.TaggedError<Timeout>()(
  "Timeout",
  { ...fields, phase: Schema.Literals(["connect", "first_byte", "idle"]) },
  { httpApiStatus: errorCodes.upstream_timeout.status },
) {
  readonly code = "upstream_timeout"
  readonly status = errorCodes.upstream_timeout.status
  readonly retryable = errorCodes.upstream_timeout.retryable
}

export class NetworkError extends Schema.TaggedError<NetworkError>()("NetworkError", fields, {
  httpApiStatus: errorCodes.upstream_unreachable.status,
}) {
  readonly code = "upstream_unreachable"
  readonly status = errorCodes.upstream_unreachable.status
  readonly retryable = errorCodes.upstream_unreachable.retryable
}

/** The stream ended (or the provider sent an error event) after a 200, before its finish event. */
export class StreamFailed extends Schema.TaggedError<StreamFailed>()("StreamFailed", fields, {
  httpApiStatus: errorCodes.upstream_stream_error.status,
}) {
  readonly code = "upstream_stream_error"
  readonly status = errorCodes.upstream_stream_error.status
  readonly retryable = errorCodes.upstream_stream_error.retryable
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
