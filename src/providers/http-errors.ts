import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import {
  BadRequest,
  NetworkError,
  Overloaded,
  type ProviderError,
  RateLimited,
  StreamFailed,
  Timeout,
  Unauthorized,
  UpstreamError,
} from "../domain/provider-errors.ts"

/**
 * From what a provider answered (an HTTP error, an error inside a 200 stream, a broken socket)
 * to a typed ProviderError carrying the provider's own message and its retry hint.
 */

/** Response headers as undici gives them: lower-case names, repeated headers as arrays. */
export type ResponseHeaders = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

const header = (headers: ResponseHeaders, name: string): string | undefined => {
  const value = headers[name]
  return typeof value === "string" ? value : value?.[0]
}

const durationPart = /(\d+(?:\.\d+)?)(ms|h|m|s)/g
const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Go-style durations as OpenAI (`6m0s`, `1s`, `20ms`) and Google (`34.4s`) write them; a bare number is seconds. */
export const parseDurationMs = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000)
  let total = 0
  let matched = 0
  for (const [whole, amount, unit] of trimmed.matchAll(durationPart)) {
    total += Number(amount) * unitMs[unit!]!
    matched += whole.length
  }
  return matched > 0 && matched === trimmed.length ? Math.round(total) : undefined
}

/**
 * The longest hint passed on: Node's longest timer. A hint is the provider's to write
 * (`retry-after: 1e400` parses as Infinity); the pacer then caps it at UPSTREAM_MAX_PAUSE_MS.
 */
export const maxHintMs = 2 ** 31 - 1

/** A parsed hint as a finite, non-negative number of milliseconds (undefined stays undefined). */
const bounded = (ms: number | undefined) =>
  ms === undefined || Number.isNaN(ms) ? undefined : Math.min(Math.max(0, ms), maxHintMs)

/** `retry-after` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
const parseRetryAfter = (value: string, now: number): number | undefined => {
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.round(Number(value) * 1000)
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** A rate limit's two headers: when it resets, and what remains of it. */
interface LimitHeaders {
  readonly reset: string
  readonly remaining: string
}

/** The reset of each limit (ms from now) and whether that limit is used up (remaining 0). */
const limitResets = (
  headers: ResponseHeaders,
  limits: ReadonlyArray<LimitHeaders>,
  parse: (value: string) => number | undefined,
) => {
  const resets: Array<{ readonly ms: number; readonly exhausted: boolean }> = []
  for (const limit of limits) {
    const raw = header(headers, limit.reset)
    const ms = raw === undefined ? undefined : parse(raw)
    if (ms === undefined || ms <= 0) continue
    resets.push({ ms, exhausted: header(headers, limit.remaining)?.trim() === "0" })
  }
  return resets
}

const longest = (resets: ReadonlyArray<{ readonly ms: number }>) =>
  resets.length === 0 ? undefined : Math.max(...resets.map((r) => r.ms))

// Header names built once: they are looked up on every answer.
const openAiLimits: ReadonlyArray<LimitHeaders> = ["requests", "tokens"].map((n) => ({
  reset: `x-ratelimit-reset-${n}`,
  remaining: `x-ratelimit-remaining-${n}`,
}))
const anthropicLimits: ReadonlyArray<LimitHeaders> = [
  "requests",
  "tokens",
  "input-tokens",
  "output-tokens",
].map((n) => ({ reset: `anthropic-ratelimit-${n}-reset`, remaining: `anthropic-ratelimit-${n}-remaining` }))

/** OpenAI's `x-ratelimit-*` and Anthropic's `anthropic-ratelimit-*` (RFC 3339) limits, in that order. */
const providerLimitResets = (headers: ResponseHeaders, now: number) => [
  limitResets(headers, openAiLimits, parseDurationMs),
  limitResets(headers, anthropicLimits, (value) => {
    const at = Date.parse(value)
    return Number.isNaN(at) ? undefined : at - now
  }),
]

/**
 * The longest reset among the limits that are used up, else among all of them: a retry before the
 * exhausted limit resets is wasted.
 */
const resetFromLimits = (headers: ResponseHeaders, now: number): number | undefined => {
  for (const resets of providerLimitResets(headers, now)) {
    const found = longest(resets.filter((r) => r.exhausted)) ?? longest(resets)
    if (found !== undefined) return found
  }
  return undefined
}

/** Google puts `{"@type": "...RetryInfo", "retryDelay": "21s"}` among `error.details`. */
const retryInfoMs = (details: unknown): number | undefined => {
  if (!Array.isArray(details)) return undefined
  for (const detail of details) {
    if (
      Predicate.isObject(detail) &&
      typeof detail["@type"] === "string" &&
      detail["@type"].endsWith("RetryInfo") &&
      typeof detail.retryDelay === "string"
    ) {
      return parseDurationMs(detail.retryDelay)
    }
  }
  return undefined
}

/**
 * On a successful answer: how long until a limit that is used up (remaining 0) resets, so the
 * pacer can hold the next call instead of earning a 429. Undefined while every limit has room.
 */
export const exhaustedResetMs = (headers: ResponseHeaders, now: number): number | undefined => {
  // Most answers have room in every limit: nothing to parse then.
  const usedUp = (limit: LimitHeaders) => header(headers, limit.remaining)?.trim() === "0"
  if (!openAiLimits.some(usedUp) && !anthropicLimits.some(usedUp)) return undefined
  for (const resets of providerLimitResets(headers, now)) {
    const found = longest(resets.filter((r) => r.exhausted))
    if (found !== undefined) return bounded(found)
  }
  return undefined
}

/**
 * The provider's retry hint in milliseconds, most explicit first: `retry-after-ms`, `retry-after`,
 * Gemini's RetryInfo, then the reset time of OpenAI's `x-ratelimit-reset-*` or Anthropic's
 * `anthropic-ratelimit-*-reset` (RFC 3339) headers.
 */
export const retryAfterMs = (headers: ResponseHeaders, details: unknown, now: number): number | undefined => {
  const ms = header(headers, "retry-after-ms")
  if (ms !== undefined && Number.isFinite(Number(ms))) return bounded(Math.round(Number(ms)))
  const after = header(headers, "retry-after")
  const fromAfter = after === undefined ? undefined : parseRetryAfter(after, now)
  if (fromAfter !== undefined) return bounded(fromAfter)
  return bounded(retryInfoMs(details) ?? resetFromLimits(headers, now))
}

/** What the error envelopes of OpenAI, Anthropic, Gemini and OpenRouter have in common. */
export interface ErrorBody {
  readonly message?: string | undefined
  /** OpenAI `code` ("rate_limit_exceeded"), OpenRouter/Gemini numeric `code`. */
  readonly code?: string | number | undefined
  /** OpenAI/Anthropic `type` ("overloaded_error"). */
  readonly type?: string | undefined
  /** Gemini `status` ("RESOURCE_EXHAUSTED"). */
  readonly status?: string | undefined
  /** Gemini `details[].reason` ("API_KEY_INVALID"). */
  readonly reasons: ReadonlyArray<string>
  readonly details?: unknown
}

const optionalString = (value: unknown) => (typeof value === "string" ? value : undefined)

/** Reads `{"error": {...}}` (also as Gemini's one-element array) or Anthropic's `{"type":"error","error":{...}}`. */
export const readErrorObject = (error: unknown): ErrorBody => {
  if (!Predicate.isObject(error)) return { message: optionalString(error), reasons: [] }
  const metadata = Predicate.isObject(error.metadata) ? error.metadata : undefined
  const raw = optionalString(metadata?.raw)
  const message = optionalString(error.message)
  const reasons: Array<string> = []
  if (Array.isArray(error.details)) {
    for (const detail of error.details) {
      if (Predicate.isObject(detail) && typeof detail.reason === "string") reasons.push(detail.reason)
    }
  }
  return {
    // OpenRouter's own message is a generic "Provider returned error"; the upstream's words are in metadata.raw.
    message: raw !== undefined && message !== undefined ? `${message}: ${raw}` : (message ?? raw),
    code: typeof error.code === "number" || typeof error.code === "string" ? error.code : undefined,
    type: optionalString(error.type),
    status: optionalString(error.status),
    reasons,
    details: error.details,
  }
}

const htmlTitle = /<title>([^<]*)<\/title>/i

const parseErrorBody = (text: string): ErrorBody => {
  try {
    const parsed: unknown = JSON.parse(text)
    const envelope = Array.isArray(parsed) ? parsed[0] : parsed
    if (Predicate.isObject(envelope) && envelope.error !== undefined) return readErrorObject(envelope.error)
    if (Predicate.isObject(envelope)) return readErrorObject(envelope)
  } catch {
    // Not JSON: Perplexity answers a bad key with an HTML page from its proxy.
  }
  const title = htmlTitle.exec(text)?.[1]?.trim()
  const plain = text.trim()
  return { message: title || (plain.length > 0 ? plain.slice(0, 300) : undefined), reasons: [] }
}

const maxMessageChars = 1000

/** Bounded, and with the API key cut out in case a provider echoed it back. */
export const cleanMessage = (message: string, secret: string): string => {
  const scrubbed = secret.length > 0 ? message.split(secret).join("[redacted]") : message
  return scrubbed.length > maxMessageChars ? `${scrubbed.slice(0, maxMessageChars)}…` : scrubbed
}

const isAuthFailure = (body: ErrorBody) =>
  body.reasons.includes("API_KEY_INVALID") ||
  body.status === "UNAUTHENTICATED" ||
  body.status === "PERMISSION_DENIED" ||
  body.type === "authentication_error" ||
  body.type === "permission_error"

const isRateLimit = (body: ErrorBody) =>
  body.code === 429 ||
  body.code === "rate_limit_exceeded" ||
  body.type === "rate_limit_error" ||
  body.status === "RESOURCE_EXHAUSTED"

const isOverload = (body: ErrorBody) =>
  body.code === 529 || body.code === 503 || body.type === "overloaded_error" || body.status === "UNAVAILABLE"

/** A non-2xx response, from its status, headers and (bounded) body text. */
export const errorFromResponse = (
  provider: ProviderName,
  status: number,
  headers: ResponseHeaders,
  bodyText: string,
  secret: string,
  now: number,
): ProviderError => {
  const body = parseErrorBody(bodyText)
  const hint = retryAfterMs(headers, body.details, now)
  const fields = {
    provider,
    message: cleanMessage(body.message ?? `HTTP ${status}`, secret),
    ...(hint === undefined ? {} : { retryAfterMs: hint }),
  }
  if (status === 401 || status === 403 || (status < 500 && isAuthFailure(body)))
    return new Unauthorized(fields)
  if (status === 429) return new RateLimited(fields)
  if (status === 503 || status === 529) return new Overloaded(fields)
  if (status >= 500 || status < 400) return new UpstreamError(fields)
  return new BadRequest(fields)
}

/**
 * An error the provider sent inside a 200 stream (OpenAI/OpenRouter `{"error":…}` data, Anthropic
 * `event: error`, a Gemini error chunk). Bytes already reached the client, so it is a failure of
 * the stream unless its code names something more specific.
 */
export const errorFromStream = (provider: ProviderName, error: unknown, secret: string): ProviderError => {
  const body = readErrorObject(error)
  const fields = { provider, message: cleanMessage(body.message ?? "the provider reported an error", secret) }
  if (isRateLimit(body)) return new RateLimited(fields)
  if (isOverload(body)) return new Overloaded(fields)
  return new StreamFailed(fields)
}

/**
 * A failure of the connection itself; after the first byte it is a broken stream, not a reason to
 * retry. The client is told only which provider could not be reached: the socket's own words
 * (`connect ECONNREFUSED 10.1.2.3:443`) name the network behind DAC, so they go to `detail`, which
 * only the logs see.
 */
export const errorFromTransport = (
  provider: ProviderName,
  error: unknown,
  afterFirstByte: boolean,
): ProviderError => {
  const code = Predicate.isObject(error) && typeof error.code === "string" ? error.code : undefined
  const text = error instanceof Error ? error.message : String(error)
  const detail = code === undefined || text.includes(code) ? text : `${text} (${code})`
  if (code === "UND_ERR_CONNECT_TIMEOUT") {
    return new Timeout({ provider, phase: "connect", message: `connecting to ${provider} timed out`, detail })
  }
  if (afterFirstByte) {
    return new StreamFailed({
      provider,
      message: `the connection to ${provider} was lost mid-stream`,
      detail,
    })
  }
  return new NetworkError({ provider, message: `could not reach ${provider}`, detail })
}

export const truncated = (provider: ProviderName, what: string) =>
  new StreamFailed({ provider, message: `the stream ended before ${what}` })
