import { HttpServerResponse } from "effect/http"

/**
 * OpenAI's error body, `{"error":{"message","type","param","code"}}`: the official SDKs raise it as
 * their own typed errors (`BadRequestError`, `RateLimitError`, …). Every answer under `/v1`, the
 * error middleware's included, has this shape.
 */

const errorTypes: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  404: "not_found_error",
  409: "invalid_request_error",
  413: "invalid_request_error",
  415: "invalid_request_error",
  429: "rate_limit_error",
  431: "invalid_request_error",
}

export const openAiErrorType = (status: number) => errorTypes[status] ?? "api_error"

/** The body, as a response or inside a stream; `param` names the offending field. */
export const openAiErrorBody = (
  type: string,
  code: unknown,
  message: unknown,
  param: string | null = null,
) => ({
  error: { message, type, param, code },
})

/** An error answer in OpenAI's shape. */
export const openAiError = (
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
  param: string | null = null,
) =>
  HttpServerResponse.jsonUnsafe(openAiErrorBody(openAiErrorType(status), code, message, param), {
    status,
    headers,
  })

/** The OpenAI-compatible routes live under `/v1`. */
export const isOpenAiPath = (url: string) => url === "/v1" || url.startsWith("/v1/") || url.startsWith("/v1?")
