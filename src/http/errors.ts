import { Schema } from "effect"

/**
 * The wire form of every error: `{"error":{"code","message"}}`, one class per HTTP status so the
 * OpenAPI document lists each. Domain errors are mapped onto them by `toApiError`.
 */
export const ErrorDetail = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  retryable: Schema.optional(Schema.Boolean),
})
export type ErrorDetail = typeof ErrorDetail.Type
const fields = { error: ErrorDetail }

export class BadRequestError extends Schema.Error<BadRequestError>("BadRequestError")(fields, {
  httpApiStatus: 400,
}) {}
export class UnauthorizedError extends Schema.Error<UnauthorizedError>("UnauthorizedError")(fields, {
  httpApiStatus: 401,
}) {}
export class NotFoundError extends Schema.Error<NotFoundError>("NotFoundError")(fields, {
  httpApiStatus: 404,
}) {}
export class ConflictError extends Schema.Error<ConflictError>("ConflictError")(fields, {
  httpApiStatus: 409,
}) {}
export class PayloadTooLargeError extends Schema.Error<PayloadTooLargeError>("PayloadTooLargeError")(fields, {
  httpApiStatus: 413,
}) {}
export class TooManyRequestsError extends Schema.Error<TooManyRequestsError>("TooManyRequestsError")(fields, {
  httpApiStatus: 429,
}) {}
export class InternalError extends Schema.Error<InternalError>("InternalError")(fields, {
  httpApiStatus: 500,
}) {}
export class BadGatewayError extends Schema.Error<BadGatewayError>("BadGatewayError")(fields, {
  httpApiStatus: 502,
}) {}
export class UnavailableError extends Schema.Error<UnavailableError>("UnavailableError")(fields, {
  httpApiStatus: 503,
}) {}
export class GatewayTimeoutError extends Schema.Error<GatewayTimeoutError>("GatewayTimeoutError")(fields, {
  httpApiStatus: 504,
}) {}

export type ApiError =
  | BadRequestError
  | UnauthorizedError
  | NotFoundError
  | ConflictError
  | PayloadTooLargeError
  | TooManyRequestsError
  | InternalError
  | BadGatewayError
  | UnavailableError
  | GatewayTimeoutError

/** Every error class, for endpoints that can answer with any of them. */
export const ApiErrors = [
  BadRequestError,
  UnauthorizedError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  TooManyRequestsError,
  InternalError,
  BadGatewayError,
  UnavailableError,
  GatewayTimeoutError,
] as const

/** What every domain and provider error has: its status, stable code and a message. */
export interface DescribedError {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly retryable?: boolean
}

export const toApiError = (e: DescribedError): ApiError => {
  const detail: ErrorDetail =
    e.retryable === undefined
      ? { code: e.code, message: e.message }
      : { code: e.code, message: e.message, retryable: e.retryable }
  switch (e.status) {
    case 400:
      return new BadRequestError({ error: detail })
    case 401:
      return new UnauthorizedError({ error: detail })
    case 404:
      return new NotFoundError({ error: detail })
    case 409:
      return new ConflictError({ error: detail })
    case 413:
      return new PayloadTooLargeError({ error: detail })
    case 429:
      return new TooManyRequestsError({ error: detail })
    case 502:
      return new BadGatewayError({ error: detail })
    case 503:
      return new UnavailableError({ error: detail })
    case 504:
      return new GatewayTimeoutError({ error: detail })
    default:
      return new InternalError({ error: detail })
  }
}

/** `retry-after` wants whole seconds; rounding up never invites a retry too early. */
export const retryAfterHeader = (retryAfterMs: number) => ({
  "retry-after": String(Math.ceil(retryAfterMs / 1000)),
})
