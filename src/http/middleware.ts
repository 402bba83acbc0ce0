import { ByteSize, Cause, Effect, Exit, Schema, SchemaIssue } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiError } from "effect/http-api"
import type { ErrorDetail } from "./errors.ts"
import { isOpenAiPath, openAiError } from "./openai-errors.ts"

/** DAC's `{"error":{code,message}}`, or OpenAI's shape under `/v1` (its SDKs parse that one). */
const errorResponse = (url: string, status: number, detail: ErrorDetail) =>
  isOpenAiPath(url)
    ? openAiError(status, detail.code, detail.message)
    : HttpServerResponse.jsonUnsafe({ error: detail }, { status })

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const slotNames: Record<string, string> = {
  Params: "path parameter",
  Headers: "header",
  Query: "query parameter",
  Payload: "body",
}

/** `body: content: must not be empty; role: Expected "user"` — every problem, each with its path. */
const describeSchemaError = (error: HttpApiError.HttpApiSchemaError, body: unknown): string => {
  const slot = slotNames[error.kind] ?? error.kind.toLowerCase()
  const cause = error.cause as { issue?: SchemaIssue.Issue; message?: string }
  if (cause.issue === undefined) return `invalid ${slot}: ${cause.message ?? "malformed"}`
  const issues = formatIssues(unwrapUnion(cause.issue, body)).issues.map((issue) => {
    const path = (issue.path ?? []).map((key) => (typeof key === "object" ? String(key.key) : String(key)))
    return path.length > 0 ? `${path.join(".")}: ${issue.message}` : issue.message
  })
  return `invalid ${slot}: ${issues.join("; ")}`
}

/**
 * HttpApi decodes a payload as a union of its accepted schemas. When no member even matched (a
 * literal like `role` was wrong) the union says only "Expected {…}" and keeps no input, so decode
 * the (already read, cached) body against the one object member again to name every wrong field.
 */
const unwrapUnion = (issue: SchemaIssue.Issue, body: unknown): SchemaIssue.Issue => {
  if (issue._tag !== "AnyOf") return issue
  if (issue.issues.length === 1) return unwrapUnion(issue.issues[0]!, body)
  const members = issue.ast.types.filter((member) => member._tag === "Objects")
  if (issue.issues.length === 0 && members.length === 1 && typeof body === "object" && body !== null) {
    const retry = Schema.decodeUnknownExit(Schema.make<Schema.Codec<unknown>>(members[0]!), {
      errors: "all",
    })(body)
    if (Exit.isFailure(retry)) {
      const failure = retry.cause.reasons.find((reason) => reason._tag === "Fail")
      if (failure) return failure.error.issue
    }
  }
  return issue
}

const readJsonBody = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const text = yield* request.text
  return yield* Effect.try(() => JSON.parse(text) as unknown)
}).pipe(Effect.orElseSucceed(() => undefined))

/** `application/json` (any case, with parameters): the one type HttpApi decodes a payload from. */
const isJson = (contentType: string | undefined) =>
  contentType !== undefined && /^\s*application\/json\s*(;|$)/i.test(contentType)

/**
 * Turns what HttpApi would answer with an empty body (schema failures, oversized bodies, unknown
 * routes, defects) into the `{"error":{…}}` shape, and rejects non-JSON and oversized bodies
 * before anything reads them.
 */
export const errorMiddleware = (maxBodyBytes: number) => {
  const maxBodySize = ByteSize.bytes(BigInt(maxBodyBytes))
  return HttpRouter.middleware(
    (app) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const url = request.url
        if (request.method === "POST" || request.method === "PUT" || request.method === "PATCH") {
          const rawLength = request.headers["content-length"]
          const length = rawLength === undefined ? 0 : Number(rawLength)
          if (length > maxBodyBytes) {
            return errorResponse(url, 413, {
              code: "body_too_large",
              message: `the request body is ${length} bytes; the limit is ${maxBodyBytes}`,
            })
          }
          const hasBody = length > 0 || request.headers["transfer-encoding"] !== undefined
          if (hasBody && !isJson(request.headers["content-type"])) {
            return errorResponse(url, 415, {
              code: "unsupported_media_type",
              message: `expected content-type: application/json, got ${describeContentType(request.headers["content-type"])}`,
            })
          }
        }
        return yield* app.pipe(
          Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBodySize),
          Effect.catchCause((cause) => answerFailure(cause, request.method, url, maxBodyBytes)),
        )
      }),
    { global: true },
  )
}

/** A content type echoed back, bounded: the header can be up to MAX_HEADER_BYTES of anything. */
const describeContentType = (contentType: string | undefined) => {
  if (contentType === undefined) return "none"
  const shown = contentType.length > 100 ? `${contentType.slice(0, 100)}…` : contentType
  return JSON.stringify(shown)
}

/** What HttpApi and the router fail with, as an error body; a defect is logged and answered 500. */
const answerFailure = (cause: Cause.Cause<unknown>, method: string, url: string, maxBodyBytes: number) => {
  for (const reason of cause.reasons) {
    const failure = reason._tag === "Die" ? reason.defect : reason._tag === "Fail" ? reason.error : undefined
    if (HttpApiError.HttpApiSchemaError.is(failure)) {
      return Effect.map(readJsonBody, (body) =>
        errorResponse(url, 400, { code: "invalid_request", message: describeSchemaError(failure, body) }),
      )
    }
    if (HttpApiError.HttpApiPayloadTooLarge.is(failure) || isBodyTooLarge(failure)) {
      return Effect.succeed(
        errorResponse(url, 413, {
          code: "body_too_large",
          message: `the request body is over ${maxBodyBytes} bytes`,
        }),
      )
    }
    if (isTagged(failure, "RouteNotFound") || isTagged(serverErrorReason(failure), "RouteNotFound")) {
      return Effect.succeed(
        errorResponse(url, 404, {
          code: "not_found",
          message: `no route for ${method} ${url.length > 200 ? `${url.slice(0, 200)}…` : url}`,
        }),
      )
    }
  }
  if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
  return Effect.logError("unhandled error", cause).pipe(
    Effect.as(errorResponse(url, 500, { code: "internal_error", message: "internal error" })),
  )
}

const isTagged = (u: unknown, tag: string): boolean =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === tag

/** The router wraps its own failures in an HttpServerError whose `reason` says what happened. */
const serverErrorReason = (u: unknown): unknown =>
  isTagged(u, "HttpServerError") ? (u as { reason?: unknown }).reason : undefined

/** Reading a body past `MaxBodySize` (a chunked body has no content-length to check up front). */
export const isBodyTooLarge = (u: unknown): boolean => {
  const error = isTagged(u, "RequestParseError") ? u : serverErrorReason(u)
  if (!isTagged(error, "RequestParseError")) return false
  const { reason, cause } = error as { reason?: unknown; cause?: { message?: unknown } }
  return reason === "BodyTooLarge" || cause?.message === "maxBytes exceeded"
}
