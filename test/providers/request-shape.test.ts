import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll, beforeEach, describe } from "vitest"
import { type FakeProvider, type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { loadTranscript, withBody } from "../support/wire.ts"
import { adapterFor, collect, requestFor, testKey } from "./harness.ts"

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeUpstream()
})
afterAll(() => fake.close())
beforeEach(() => fake.reset())

const conversation = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello." },
  { role: "user", content: "Capital of France?" },
] as const

/** Sends one request through the real adapter and returns what the fake upstream received. */
const send = (
  provider: FakeProvider,
  options: { temperature?: number; maxTokens?: number; topP?: number; stop?: ReadonlyArray<string> } = {},
) =>
  Effect.gen(function* () {
    const adapter = yield* adapterFor(fake, provider)
    const outcome = yield* collect(
      adapter.stream(requestFor(provider, { messages: conversation, ...options })),
    )
    expect(outcome.error).toBeUndefined()
    const calls = fake.calls(provider)
    expect(calls).toHaveLength(1)
    return calls[0]!
  })

const chatMessages = conversation.map(({ role, content }) => ({ role, content }))

describe("request shape per provider", () => {
  it.live("openai: Bearer key, stream with usage, max_completion_tokens", () =>
    Effect.gen(function* () {
      const call = yield* send("openai", { temperature: 0.2, maxTokens: 50 })
      expect(call.method).toBe("POST")
      expect(call.url).toBe("/openai/v1/chat/completions")
      expect(call.headers.authorization).toBe(`Bearer ${testKey("openai")}`)
      expect(call.headers["content-type"]).toBe("application/json")
      expect(call.headers.accept).toContain("text/event-stream")
      expect(call.body).toEqual({
        model: "openai-test-model",
        messages: chatMessages,
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0.2,
        max_completion_tokens: 50,
      })
    }),
  )

  it.live("perplexity: its own base path, max_tokens, no stream_options (usage comes anyway)", () =>
    Effect.gen(function* () {
      const call = yield* send("perplexity", { maxTokens: 50 })
      expect(call.url).toBe("/perplexity/chat/completions")
      expect(call.headers.authorization).toBe(`Bearer ${testKey("perplexity")}`)
      expect(call.body).toEqual({
        model: "perplexity-test-model",
        messages: chatMessages,
        stream: true,
        max_tokens: 50,
      })
    }),
  )

  it.live("openrouter: /api/v1 base, max_tokens, usage asked for", () =>
    Effect.gen(function* () {
      const call = yield* send("openrouter", { maxTokens: 50 })
      expect(call.url).toBe("/openrouter/api/v1/chat/completions")
      expect(call.headers.authorization).toBe(`Bearer ${testKey("openrouter")}`)
      expect(call.body).toEqual({
        model: "openrouter-test-model",
        messages: chatMessages,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 50,
      })
    }),
  )

  it.live("anthropic: x-api-key, anthropic-version, required max_tokens, system apart", () =>
    Effect.gen(function* () {
      const call = yield* send("anthropic", { temperature: 0.5, maxTokens: 50 })
      expect(call.url).toBe("/anthropic/v1/messages")
      expect(call.headers["x-api-key"]).toBe(testKey("anthropic"))
      expect(call.headers["anthropic-version"]).toBe("2023-06-01")
      expect(call.headers.authorization).toBeUndefined()
      expect(call.headers["content-type"]).toBe("application/json")
      expect(call.body).toEqual({
        model: "anthropic-test-model",
        max_tokens: 50,
        system: "Be brief.",
        messages: chatMessages.slice(1),
        temperature: 0.5,
        stream: true,
      })
    }),
  )

  it.live("top_p and stop sequences, in each protocol's own names", () =>
    Effect.gen(function* () {
      const sampling = { topP: 0.3, stop: ["\n\n", "END"] }
      expect((yield* send("openai", sampling)).body).toMatchObject({ top_p: 0.3, stop: ["\n\n", "END"] })
      expect((yield* send("anthropic", sampling)).body).toMatchObject({
        top_p: 0.3,
        stop_sequences: ["\n\n", "END"],
      })
      expect((yield* send("gemini", sampling)).body).toMatchObject({
        generationConfig: { topP: 0.3, stopSequences: ["\n\n", "END"] },
      })
    }),
  )

  it.live("anthropic: max_tokens defaults when the caller set none", () =>
    Effect.gen(function* () {
      const call = yield* send("anthropic")
      expect(call.body).toMatchObject({ max_tokens: 4096 })
    }),
  )

  it.live("gemini: model in the path, alt=sse, x-goog-api-key (never in the URL), contents and config", () =>
    Effect.gen(function* () {
      const call = yield* send("gemini", { temperature: 0.1, maxTokens: 50 })
      expect(call.pathname).toBe("/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent")
      expect(call.query.get("alt")).toBe("sse")
      expect(call.query.has("key")).toBe(false)
      expect(call.headers["x-goog-api-key"]).toBe(testKey("gemini"))
      expect(call.headers.authorization).toBeUndefined()
      expect(call.body).toEqual({
        contents: [
          { role: "user", parts: [{ text: "Hi" }] },
          { role: "model", parts: [{ text: "Hello." }] },
          { role: "user", parts: [{ text: "Capital of France?" }] },
        ],
        systemInstruction: { parts: [{ text: "Be brief." }] },
        generationConfig: { temperature: 0.1, maxOutputTokens: 50 },
      })
    }),
  )
})

describe("connections", () => {
  it.live("reuses one kept-alive socket for consecutive requests to a provider", () =>
    Effect.gen(function* () {
      const adapter = yield* adapterFor(fake, "openai")
      for (let i = 0; i < 3; i++) {
        const outcome = yield* collect(adapter.stream(requestFor("openai")))
        expect(outcome.error).toBeUndefined()
      }
      const sockets = new Set(fake.calls("openai").map((call) => call.socket))
      expect(fake.calls("openai")).toHaveLength(3)
      expect(sockets.size).toBe(1)
    }),
  )

  it.live("warms the pool at start-up, before any request", () =>
    Effect.gen(function* () {
      yield* adapterFor(fake, "anthropic")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
      expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual(["HEAD /anthropic/v1"])
    }),
  )

  it.live("closes its connections when the adapter's scope closes", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(
        Effect.gen(function* () {
          const adapter = yield* adapterFor(fake, "gemini")
          yield* collect(adapter.stream(requestFor("gemini")))
        }),
      )
      const call = fake.calls("gemini")[0]!
      yield* Effect.promise(() => fake.socketClosedAt(call, 1_000))
    }),
  )
})

describe("the API key", () => {
  it.live("never reaches an error message, even when the provider echoes it", () =>
    Effect.gen(function* () {
      const echo = withBody(
        loadTranscript("openai-error-401"),
        JSON.stringify({
          error: { message: `Incorrect API key provided: ${testKey("openai")}.`, code: "invalid_api_key" },
        }),
      )
      fake.on("openai", { transcript: echo })
      const adapter = yield* adapterFor(fake, "openai")
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      expect(outcome.error?._tag).toBe("Unauthorized")
      expect(outcome.error?.message).toBe("Incorrect API key provided: [redacted].")
      expect(JSON.stringify(outcome.error)).not.toContain(testKey("openai"))
    }),
  )
})
