/**
 * Every error code the error classes carry (domain/errors.ts, domain/provider-errors.ts), in one
 * table: the HTTP status it is answered with, whether trying again can help (`retryable`, sent in
 * the body where it is set), and the OpenAI error type the `/v1` routes give it (what the official
 * SDKs raise it as). The classes read their status and `retryable` from here.
 */
export interface ErrorCodeInfo {
  readonly status: number
  readonly retryable?: boolean
  readonly openAiType: string
}

export const errorCodes = {
  // Answered by the http layer itself (a body or header that does not decode, no org, a bug).
  invalid_request: { status: 400, openAiType: "invalid_request_error" },
  missing_org_id: { status: 400, openAiType: "invalid_request_error" },
  internal_error: { status: 500, openAiType: "api_error" },
  unknown_provider: { status: 400, openAiType: "invalid_request_error" },
  unknown_model: { status: 400, openAiType: "invalid_request_error" },
  thread_not_found: { status: 404, retryable: false, openAiType: "not_found_error" },
  request_not_found: { status: 404, openAiType: "not_found_error" },
  content_too_large: { status: 413, openAiType: "invalid_request_error" },
  image_too_large: { status: 413, openAiType: "invalid_request_error" },
  invalid_tool_result: { status: 400, openAiType: "invalid_request_error" },
  provider_not_configured: { status: 503, openAiType: "api_error" },
  store_unavailable: { status: 503, retryable: true, openAiType: "api_error" },
  generation_timeout: { status: 504, retryable: false, openAiType: "api_error" },
  generation_too_large: { status: 502, retryable: false, openAiType: "api_error" },
  shutting_down: { status: 503, retryable: true, openAiType: "api_error" },
  replica_lost: { status: 502, retryable: true, openAiType: "api_error" },
  too_many_listeners: { status: 429, retryable: true, openAiType: "rate_limit_error" },
  invalid_api_key: { status: 401, openAiType: "authentication_error" },
  key_not_found: { status: 404, openAiType: "not_found_error" },
  cancelled: { status: 409, openAiType: "invalid_request_error" },
  idempotency_conflict: { status: 409, openAiType: "invalid_request_error" },
  thread_moved: { status: 409, openAiType: "invalid_request_error" },
  rate_limited: { status: 429, retryable: true, openAiType: "rate_limit_error" },
  key_rate_limited: { status: 429, retryable: true, openAiType: "rate_limit_error" },
  key_concurrency_limited: { status: 429, retryable: true, openAiType: "rate_limit_error" },
  key_budget_exhausted: { status: 429, retryable: true, openAiType: "rate_limit_error" },
  upstream_rate_limited: { status: 503, retryable: true, openAiType: "api_error" },
  upstream_unauthorized: { status: 502, retryable: false, openAiType: "api_error" },
  upstream_bad_request: { status: 400, retryable: false, openAiType: "invalid_request_error" },
  upstream_overloaded: { status: 503, retryable: true, openAiType: "api_error" },
  upstream_error: { status: 502, retryable: true, openAiType: "api_error" },
  upstream_timeout: { status: 504, retryable: true, openAiType: "api_error" },
  upstream_unreachable: { status: 502, retryable: true, openAiType: "api_error" },
  upstream_stream_error: { status: 502, retryable: false, openAiType: "api_error" },
} as const satisfies Record<string, ErrorCodeInfo>

export type ErrorCode = keyof typeof errorCodes

/** OpenAI's error type for a status, for answers that carry no code of the table (a bad route, …). */
const typesByStatus: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  404: "not_found_error",
  409: "invalid_request_error",
  413: "invalid_request_error",
  415: "invalid_request_error",
  429: "rate_limit_error",
  431: "invalid_request_error",
}

/** The OpenAI error type of an answer: its code's, else its status's. */
export const openAiErrorType = (status: number, code?: string) =>
  (code !== undefined && Object.hasOwn(errorCodes, code)
    ? errorCodes[code as ErrorCode].openAiType
    : undefined) ??
  typesByStatus[status] ??
  "api_error"
