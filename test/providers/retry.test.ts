import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll, beforeEach, describe } from "vitest"
import { BadRequest, Overloaded, RateLimited } from "../../src/domain/provider-errors.ts"
import { retryDelayMs } from "../../src/providers/retry.ts"
import { type FakeUpstream, type Reply, startFakeUpstream } from "../support/fake-upstream.ts"
import { adapterFor, collect, requestFor } from "./harness.ts"

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeUpstream()
})
afterAll(() => fake.close())
beforeEach(() => fake.reset())

const retrying = { maxAttempts: 3, maxRetryDelayMs: 2_000 }

/** Answers the listed replies in order, then the last one again. */
const inOrder =
  (...replies: ReadonlyArray<Reply>) =>
  (_request: unknown, index: number) =>
    replies[Math.min(index, replies.length - 1)]!

describe("retryDelayMs", () => {
  const policy = { maxAttempts: 3, maxRetryDelayMs: 10_000 }
  const fields = { provider: "openai" as const, message: "m" }

  it("obeys the provider's hint exactly, and gives up when it is beyond the cap", () => {
    expect(retryDelayMs(new RateLimited({ ...fields, retryAfterMs: 1_500 }), 1, policy)).toBe(1_500)
    expect(retryDelayMs(new RateLimited({ ...fields, retryAfterMs: 34_400 }), 1, policy)).toBeUndefined()
  })

  it("backs off exponentially with jitter, capped, without a hint", () => {
    const error = new Overloaded(fields)
    expect(retryDelayMs(error, 1, policy, () => 0)).toBe(125)
    expect(retryDelayMs(error, 1, policy, () => 1)).toBe(250)
    expect(retryDelayMs(error, 2, policy, () => 1)).toBe(500)
    expect(retryDelayMs(error, 2, { maxAttempts: 9, maxRetryDelayMs: 300 }, () => 1)).toBe(300)
  })

  it("stops at maxAttempts and never retries what cannot succeed", () => {
    expect(retryDelayMs(new Overloaded(fields), 3, policy)).toBeUndefined()
    expect(retryDelayMs(new BadRequest(fields), 1, policy)).toBeUndefined()
  })
})

describe("retries before the first byte", () => {
  it.live("429 with retry-after, then 200: succeeds after the provider's delay", () =>
    Effect.gen(function* () {
      // retry-after: 1 in the recorded 429.
      fake.on(
        "openai",
        inOrder({ transcript: "openai-error-429-rate-limit" }, { transcript: "openai-chat-stream" }),
      )
      const adapter = yield* adapterFor(fake, "openai", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      expect(outcome.error).toBeUndefined()
      expect(outcome.text).toBe("The capital of the UK is London.")
      const [first, second] = fake.calls("openai")
      expect(fake.calls("openai")).toHaveLength(2)
      const waited = second!.receivedAt - first!.receivedAt
      expect(waited).toBeGreaterThanOrEqual(990)
      expect(waited).toBeLessThan(1_500)
      // One FirstByte: the failed attempt emitted nothing.
      expect(outcome.events.filter((e) => e._tag === "FirstByte")).toHaveLength(1)
    }),
  )

  it.live("529 without a hint, then 200: succeeds after a short backoff", () =>
    Effect.gen(function* () {
      fake.on(
        "anthropic",
        inOrder({ transcript: "anthropic-error-529" }, { transcript: "anthropic-messages-stream" }),
      )
      const adapter = yield* adapterFor(fake, "anthropic", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("anthropic")))
      expect(outcome.text).toBe("2")
      expect(fake.calls("anthropic")).toHaveLength(2)
    }),
  )

  it.live("a connection cut before any body byte is retried", () =>
    Effect.gen(function* () {
      fake.on(
        "gemini",
        inOrder({ transcript: "gemini-stream", cutAfterBytes: 0 }, { transcript: "gemini-stream" }),
      )
      const adapter = yield* adapterFor(fake, "gemini", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("gemini")))
      expect(outcome.error).toBeUndefined()
      expect(outcome.text).toBe("The capital of France is Paris.\n")
      expect(fake.calls("gemini")).toHaveLength(2)
    }),
  )

  it.live("a first-byte timeout is retried", () =>
    Effect.gen(function* () {
      fake.on(
        "perplexity",
        inOrder(
          { transcript: "perplexity-stream", firstByteDelayMs: 1_000 },
          { transcript: "perplexity-stream" },
        ),
      )
      const adapter = yield* adapterFor(fake, "perplexity", { ...retrying, firstByteMs: 150 })
      const outcome = yield* collect(adapter.stream(requestFor("perplexity")))
      expect(outcome.error).toBeUndefined()
      expect(fake.calls("perplexity")).toHaveLength(2)
    }),
  )

  it.live("gives up after maxAttempts", () =>
    Effect.gen(function* () {
      fake.on("gemini", { transcript: "gemini-error-503" })
      const adapter = yield* adapterFor(fake, "gemini", { maxAttempts: 3, maxRetryDelayMs: 50 })
      const outcome = yield* collect(adapter.stream(requestFor("gemini")))
      expect(outcome.error?._tag).toBe("Overloaded")
      expect(fake.calls("gemini")).toHaveLength(3)
    }),
  )

  it.live("does not retry when the provider asks for longer than maxRetryDelayMs", () =>
    Effect.gen(function* () {
      fake.on("gemini", { transcript: "gemini-error-429" })
      const adapter = yield* adapterFor(fake, "gemini", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("gemini")))
      expect(outcome.error).toMatchObject({ _tag: "RateLimited", retryAfterMs: 34_400 })
      expect(fake.calls("gemini")).toHaveLength(1)
    }),
  )

  it.live("never retries a non-retryable 401", () =>
    Effect.gen(function* () {
      fake.on("openai", { transcript: "openai-error-401" })
      const adapter = yield* adapterFor(fake, "openai", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      expect(outcome.error?._tag).toBe("Unauthorized")
      expect(fake.calls("openai")).toHaveLength(1)
    }),
  )
})

describe("no retry after the first byte", () => {
  it.live("a connection cut mid-stream fails the stream once, keeping the text given", () =>
    Effect.gen(function* () {
      const text = "The capital of the UK is London."
      fake.on("openai", { transcript: "openai-chat-stream", cutAfterBytes: 1_200, split: "random" })
      const adapter = yield* adapterFor(fake, "openai", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      expect(outcome.error).toMatchObject({
        _tag: "StreamFailed",
        message: expect.stringMatching(/mid-stream/),
      })
      expect(text.startsWith(outcome.text)).toBe(true)
      expect(outcome.text.length).toBeGreaterThan(0)
      expect(fake.calls("openai")).toHaveLength(1)
    }),
  )

  it.live("a retryable error event after the first byte is final (Anthropic overloaded mid-stream)", () =>
    Effect.gen(function* () {
      fake.on("anthropic", { transcript: "anthropic-messages-stream-error" })
      const adapter = yield* adapterFor(fake, "anthropic", retrying)
      const outcome = yield* collect(adapter.stream(requestFor("anthropic")))
      expect(outcome.error).toMatchObject({ _tag: "Overloaded", retryable: true })
      expect(outcome.text).toBe("Hello")
      expect(fake.calls("anthropic")).toHaveLength(1)
    }),
  )

  it.live("an idle timeout between chunks fails the stream without a retry", () =>
    Effect.gen(function* () {
      fake.on("openrouter", { transcript: "openrouter-stream", split: [30, 400], writeDelayMs: 1_000 })
      const adapter = yield* adapterFor(fake, "openrouter", { ...retrying, idleMs: 150 })
      const outcome = yield* collect(adapter.stream(requestFor("openrouter")))
      expect(outcome.error).toMatchObject({ _tag: "Timeout", phase: "idle" })
      expect(outcome.events[0]?._tag).toBe("FirstByte")
      expect(fake.calls("openrouter")).toHaveLength(1)
    }),
  )

  it.live("an upstream that only sends keepalive comments is idle: Timeout in phase idle", () =>
    Effect.gen(function* () {
      const comment = ": keepalive\n\n"
      const body = new TextEncoder().encode(comment.repeat(40))
      fake.on("openai", {
        transcript: {
          name: "keepalives-only",
          status: 200,
          statusText: "OK",
          headers: [["content-type", "text/event-stream"]],
          body,
        },
        // A comment every 50 ms for 2 s: each chunk would have refreshed a per-chunk idle timer.
        split: Array.from({ length: 39 }, (_, i) => (i + 1) * comment.length),
        writeDelayMs: 50,
      })
      const adapter = yield* adapterFor(fake, "openai", { idleMs: 300 })
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      // Refreshed per chunk, the timer would have let the body end, truncated (StreamFailed).
      expect(outcome.error).toMatchObject({ _tag: "Timeout", phase: "idle", code: "upstream_timeout" })
    }),
  )

  it.live("a first-byte timeout with no attempts left is a Timeout in phase first_byte", () =>
    Effect.gen(function* () {
      fake.on("openai", { transcript: "openai-chat-stream", hangBeforeHeaders: true })
      const adapter = yield* adapterFor(fake, "openai", { firstByteMs: 150 })
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      expect(outcome.error).toMatchObject({ _tag: "Timeout", phase: "first_byte", code: "upstream_timeout" })
      expect(outcome.events).toEqual([])
    }),
  )
})
