import { describe, expect, it } from "vitest"
import {
  cleanMessage,
  errorFromResponse,
  errorFromTransport,
  exhaustedResetMs,
  maxHintMs,
  parseDurationMs,
  retryAfterMs,
} from "../../src/providers/http-errors.ts"

const now = Date.parse("2026-11-22T10:00:00Z")

describe("retry hints", () => {
  it("parses Go-style and protobuf durations", () => {
    expect(parseDurationMs("6m0s")).toBe(360_000)
    expect(parseDurationMs("1s")).toBe(1_000)
    expect(parseDurationMs("20ms")).toBe(20)
    expect(parseDurationMs("1h2m3.5s")).toBe(3_723_500)
    expect(parseDurationMs("34.4s")).toBe(34_400)
    expect(parseDurationMs("2")).toBe(2_000)
    expect(parseDurationMs("soon")).toBeUndefined()
    expect(parseDurationMs("5x")).toBeUndefined()
  })

  it("passes on no hint a timer cannot hold: finite, at most Node's longest timer", () => {
    expect(retryAfterMs({ "retry-after": "9".repeat(400) }, undefined, now)).toBe(maxHintMs)
    expect(retryAfterMs({ "retry-after-ms": "1e300" }, undefined, now)).toBe(maxHintMs)
    expect(retryAfterMs({ "x-ratelimit-reset-requests": "999h" }, undefined, now)).toBe(maxHintMs)
    const retryInfo = [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "99999999s" }]
    expect(retryAfterMs({}, retryInfo, now)).toBe(maxHintMs)
    const usedUp = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "999h" }
    expect(exhaustedResetMs(usedUp, now)).toBe(maxHintMs)
  })

  it("reads retry-after as seconds or as an HTTP date", () => {
    expect(retryAfterMs({ "retry-after": "8" }, undefined, now)).toBe(8_000)
    expect(retryAfterMs({ "retry-after": "0.5" }, undefined, now)).toBe(500)
    expect(retryAfterMs({ "retry-after": "Sun, 22 Nov 2026 10:00:30 GMT" }, undefined, now)).toBe(30_000)
    expect(retryAfterMs({ "retry-after": "Sun, 22 Nov 2026 09:00:00 GMT" }, undefined, now)).toBe(0)
  })

  it("prefers retry-after-ms, then retry-after, over the reset headers", () => {
    const headers = { "retry-after-ms": "250", "retry-after": "1", "x-ratelimit-reset-tokens": "6m0s" }
    expect(retryAfterMs(headers, undefined, now)).toBe(250)
    expect(retryAfterMs({ "retry-after": "1", "x-ratelimit-reset-tokens": "6m0s" }, undefined, now)).toBe(
      1_000,
    )
  })

  it("takes OpenAI's reset of the exhausted limit", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "4999",
      "x-ratelimit-reset-requests": "6m0s",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "210ms",
    }
    expect(retryAfterMs(headers, undefined, now)).toBe(210)
    expect(
      retryAfterMs(
        { "x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "20ms" },
        undefined,
        now,
      ),
    ).toBe(1_000)
  })

  it("takes Anthropic's RFC 3339 reset of the exhausted limit, ignoring resets in the past", () => {
    const headers = {
      "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-requests-reset": "2026-11-22T10:00:01Z",
      "anthropic-ratelimit-input-tokens-remaining": "0",
      "anthropic-ratelimit-input-tokens-reset": "2026-11-22T10:00:08Z",
      "anthropic-ratelimit-output-tokens-reset": "2026-11-22T09:00:00Z",
    }
    expect(retryAfterMs(headers, undefined, now)).toBe(8_000)
  })

  it("reads Gemini's RetryInfo from the error details", () => {
    const details = [
      { "@type": "type.googleapis.com/google.rpc.QuotaFailure", violations: [] },
      { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "21s" },
    ]
    expect(retryAfterMs({}, details, now)).toBe(21_000)
  })

  it("gives no hint when there is none", () => {
    expect(retryAfterMs({}, undefined, now)).toBeUndefined()
  })
})

describe("HTTP errors", () => {
  const json = (value: unknown) => JSON.stringify(value)

  it("maps statuses to typed errors", () => {
    const tag = (status: number, body = "") => errorFromResponse("openai", status, {}, body, "", now)._tag
    expect(tag(401)).toBe("Unauthorized")
    expect(tag(403)).toBe("Unauthorized")
    expect(tag(429)).toBe("RateLimited")
    expect(tag(529)).toBe("Overloaded")
    expect(tag(503)).toBe("Overloaded")
    expect(tag(500)).toBe("UpstreamError")
    expect(tag(502)).toBe("UpstreamError")
    expect(tag(400)).toBe("BadRequest")
    expect(tag(404)).toBe("BadRequest")
    expect(tag(422)).toBe("BadRequest")
    expect(tag(400, json({ error: { details: [{ reason: "API_KEY_INVALID" }] } }))).toBe("Unauthorized")
  })

  it("keeps the provider's message but never the key", () => {
    const key = "sk-live-0123456789"
    const body = json({ error: { message: `Incorrect API key provided: ${key}.` } })
    const error = errorFromResponse("openai", 401, {}, body, key, now)
    expect(error.message).toBe("Incorrect API key provided: [redacted].")
    expect(cleanMessage("x".repeat(5_000), "")).toHaveLength(1_001)
  })

  it("falls back to the status when the body says nothing", () => {
    expect(errorFromResponse("openai", 500, {}, "", "", now).message).toBe("HTTP 500")
  })
})

describe("transport errors", () => {
  it("tells a connect timeout, a refused connection and a cut stream apart", () => {
    const connectTimeout = Object.assign(new Error("Connect Timeout Error"), {
      code: "UND_ERR_CONNECT_TIMEOUT",
    })
    expect(errorFromTransport("anthropic", connectTimeout, false)).toMatchObject({
      _tag: "Timeout",
      phase: "connect",
    })
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" })
    expect(errorFromTransport("anthropic", refused, false)).toMatchObject({
      _tag: "NetworkError",
      retryable: true,
      message: "could not reach anthropic",
      detail: "connect ECONNREFUSED 127.0.0.1:9",
    })
    const reset = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" })
    expect(errorFromTransport("anthropic", reset, true)).toMatchObject({
      _tag: "StreamFailed",
      retryable: false,
      message: "the connection to anthropic was lost mid-stream",
      detail: "other side closed (UND_ERR_SOCKET)",
    })
  })
})
