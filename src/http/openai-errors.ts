import { HttpServerResponse } from "effect/http"
import { openAiErrorType } from "../domain/error-codes.ts"

/**
 * OpenAI's error body, `{"error":{"message","type","param","code"}}`: the official SDKs raise it as
 * their own typed errors (`BadRequestError`, `RateLimitError`, …). Every answer under `/v1`, the
 * error middleware's included, has this shape.
 */

export { openAiErrorType }

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
  HttpServerResponse.jsonUnsafe(openAiErrorBody(openAiErrorType(status, code), code, message, param), {
    status,
    headers,
  })

/** The OpenAI-compatible routes live under `/v1`. */
export const isOpenAiPath = (url: string) => url === "/v1" || url.startsWith("/v1/") || url.startsWith("/v1?")
