import { createHash } from "node:crypto"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { expectations } from "../providers/expectations.ts"
import type { Script } from "../support/fake-upstream.ts"
import { sdkGateway } from "../support/sdk-gateway.ts"

/**
 * `n` > 1 on /v1/chat/completions: n independent upstream calls (src/http/openai-choices.ts) merged
 * into one answer, with the official `openai` SDK on the client's side and the recorded bytes on
 * the provider's.
 */

const sdk = sdkGateway({
  // One call at a time and one waiting: the third choice of a request finds the queue full.
  PERPLEXITY_CONCURRENCY: "1",
  PERPLEXITY_MAX_QUEUE: "1",
})

const ask = (text = "capital?") => [{ role: "user" as const, content: `${text} ${crypto.randomUUID()}` }]

const textOf = (name: string) => expectations[name]!.text as string
const usageOf = (name: string) => {
  const expected = expectations[name]!
  if (!("usage" in expected) || expected.usage == null) throw new Error(`${name} has no usage`)
  return expected.usage
}

/** The first call answers one recording, every later one another: two choices, told apart. */
const twoRecordings =
  (first: string, then: string): Script =>
  (_, index) => ({ transcript: index === 0 ? first : then, split: "random", maxWrite: 25 })

describe("n > 1 through DAC", () => {
  it("create({n: 2}): two upstream calls (no n sent), two choices, usage summed", async () => {
    sdk.upstream.on("openai", { transcript: "openai-chat-nonstream" })
    const completion = await sdk.client.chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: ask(),
      n: 2,
    })
    const calls = sdk.upstream.calls("openai")
    expect(calls).toHaveLength(2)
    for (const call of calls) expect((call.body as Record<string, unknown>).n).toBeUndefined()
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1])
    for (const choice of completion.choices) {
      expect(choice.message.role).toBe("assistant")
      expect(choice.message.content).toMatch(expectations["openai-chat-nonstream"]!.text as RegExp)
      expect(choice.finish_reason).toBe("stop")
    }
    const usage = usageOf("openai-chat-nonstream")
    expect(completion.usage).toEqual({
      prompt_tokens: 2 * usage.input_tokens,
      completion_tokens: 2 * usage.output_tokens,
      total_tokens: 2 * (usage.input_tokens + usage.output_tokens),
    })
  })

  it("create({n: 2, stream: true}): chunks name their choice; one usage chunk, one [DONE]", async () => {
    sdk.upstream.on("openai", twoRecordings("openai-chat-stream", "openai-chat-stream-2024"))
    const stream = await sdk.client.chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: ask(),
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    })
    const texts = ["", ""]
    const finishes: Array<string | null> = [null, null]
    const usages: Array<OpenAI.CompletionUsage> = []
    const roles = new Set<number>()
    for await (const chunk of stream) {
      if (chunk.usage) usages.push(chunk.usage)
      for (const choice of chunk.choices) {
        if (choice.delta.role === "assistant") roles.add(choice.index)
        texts[choice.index] += choice.delta.content ?? ""
        if (choice.finish_reason) finishes[choice.index] = choice.finish_reason
      }
    }
    expect([...roles].sort()).toEqual([0, 1])
    expect([...texts].sort()).toEqual(
      [textOf("openai-chat-stream"), textOf("openai-chat-stream-2024")].sort(),
    )
    expect(finishes).toEqual(["stop", "stop"])
    const a = usageOf("openai-chat-stream")
    const b = usageOf("openai-chat-stream-2024")
    expect(usages).toEqual([
      {
        prompt_tokens: a.input_tokens + b.input_tokens,
        completion_tokens: a.output_tokens + b.output_tokens,
        total_tokens: a.input_tokens + b.input_tokens + a.output_tokens + b.output_tokens,
      },
    ])
  })

  it("stream({n: 2}).finalChatCompletion() assembles both choices by index", async () => {
    sdk.upstream.on("openai", twoRecordings("openai-chat-stream", "openai-chat-stream-2024"))
    const completion = await sdk.client.chat.completions
      .stream({ model: "openai/gpt-4o-mini", messages: ask(), n: 2 })
      .finalChatCompletion()
    expect(completion.choices).toHaveLength(2)
    expect(completion.choices.map((c) => c.message.content).sort()).toEqual(
      [textOf("openai-chat-stream"), textOf("openai-chat-stream-2024")].sort(),
    )
    expect(completion.choices.every((c) => c.finish_reason === "stop")).toBe(true)
  })

  it("works the same on a provider without its own n (Anthropic), streamed and not", async () => {
    sdk.upstream.on("anthropic", { transcript: "anthropic-messages-stream" })
    const streamed = await sdk.client.chat.completions
      .stream({ model: "anthropic/claude-sonnet-4-5", messages: ask(), n: 3 })
      .finalChatCompletion()
    expect(streamed.choices.map((c) => c.message.content)).toEqual(["2", "2", "2"])
    sdk.upstream.on("anthropic", { transcript: "anthropic-messages-nonstream" })
    const whole = await sdk.client.chat.completions.create({
      model: "anthropic/claude-sonnet-4-5",
      messages: ask(),
      n: 3,
    })
    expect(whole.choices.map((c) => c.message.content)).toEqual(
      Array(3).fill(textOf("anthropic-messages-nonstream")),
    )
    expect(whole.usage?.prompt_tokens).toBe(3 * usageOf("anthropic-messages-nonstream").input_tokens)
    expect(sdk.upstream.calls("anthropic")).toHaveLength(6)
  })

  it("tool calls per choice (the mock)", async () => {
    const completion = await sdk.client.chat.completions.create({
      model: "mock/tools",
      messages: ask("weather?"),
      n: 2,
      tools: [
        {
          type: "function",
          function: {
            name: "get_weather",
            parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
          },
        },
      ],
    })
    expect(completion.choices).toHaveLength(2)
    for (const choice of completion.choices) {
      expect(choice.finish_reason).toBe("tool_calls")
      expect(choice.message.tool_calls?.[0]?.type).toBe("function")
    }
    // Two calls, not one shared: the mock numbers its calls.
    expect(completion.choices[0]!.message.tool_calls![0]!.id).not.toBe(
      completion.choices[1]!.message.tool_calls![0]!.id,
    )
  })

  it("one choice failing fails the request; the other's upstream call is aborted", async () => {
    sdk.upstream.on("openai", (_, index) =>
      index === 0
        ? { transcript: "openai-chat-stream", hangAfterBytes: 600 }
        : { transcript: "openai-error-401", headersDelayMs: 100 },
    )
    const stream = await sdk.client.chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: ask(),
      n: 2,
      stream: true,
    })
    const error = await (async () => {
      for await (const _ of stream) {
        // reading until the error
      }
    })().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.APIError)
    const calls = sdk.upstream.calls("openai")
    expect(calls).toHaveLength(2)
    await sdk.upstream.socketClosedAt(calls[0]!, 2_000)

    sdk.upstream.reset()
    sdk.upstream.on("openai", (_, index) =>
      index === 0
        ? { transcript: "openai-chat-nonstream", headersDelayMs: 5_000 }
        : { transcript: "openai-error-401" },
    )
    const whole = await sdk.client.chat.completions
      .create({ model: "openai/gpt-4o-mini", messages: ask(), n: 2 })
      .catch((e: unknown) => e)
    expect(whole).toBeInstanceOf(OpenAI.APIError)
    await sdk.upstream.socketClosedAt(sdk.upstream.calls("openai")[0]!, 2_000)
  })

  it("aborting an n = 2 stream closes both upstream sockets", async () => {
    sdk.upstream.on("openai", { transcript: "openai-chat-stream", hangAfterBytes: 900 })
    const controller = new AbortController()
    const stream = await sdk.client.chat.completions.create(
      { model: "openai/gpt-4o-mini", messages: ask(), n: 2, stream: true },
      { signal: controller.signal },
    )
    const seen = new Set<number>()
    for await (const chunk of stream) {
      for (const choice of chunk.choices) if (choice.delta.content) seen.add(choice.index)
      if (seen.size === 2) break
    }
    controller.abort()
    const calls = sdk.upstream.calls("openai")
    expect(calls).toHaveLength(2)
    await Promise.all(calls.map((call) => sdk.upstream.socketClosedAt(call, 2_000)))
  })

  it("cancelling the completion's request id ends the whole stream and every choice's upstream call", async () => {
    sdk.upstream.on("openai", { transcript: "openai-chat-stream", hangAfterBytes: 900 })
    const stream = await sdk.client.chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: ask(),
      n: 2,
      stream: true,
    })
    const seen = new Set<number>()
    let id = ""
    const chunks = stream[Symbol.asyncIterator]()
    while (seen.size < 2) {
      const next = await chunks.next()
      if (next.done) throw new Error("the stream ended early")
      id = next.value.id
      for (const choice of next.value.choices) if (choice.delta.content) seen.add(choice.index)
    }
    // The completion's id names its first choice's request; /v1's org is its bearer's (header mode).
    const org = `key-${createHash("sha256").update("sk-dac-test").digest("hex").slice(0, 24)}`
    const cancelled = await fetch(
      `${sdk.gateway.baseUrl}/api/threads/cancel/${id.replace(/^chatcmpl-/, "")}`,
      {
        method: "POST",
        headers: { "x-org-id": org },
      },
    )
    expect(cancelled.status).toBe(200)
    for (;;) if ((await chunks.next()).done) break
    await Promise.all(sdk.upstream.calls("openai").map((call) => sdk.upstream.socketClosedAt(call, 2_000)))
  })

  it("a choice the pacer's queue cannot take refuses the whole request (429); the started ones are left", async () => {
    sdk.upstream.on("perplexity", { transcript: "perplexity-stream", hangAfterBytes: 300 })
    const error = await sdk.client.chat.completions
      .create({ model: "perplexity/sonar", messages: ask(), n: 3, stream: true })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.RateLimitError)
    // Whatever went upstream was aborted, and the slots came back: the next request runs.
    for (const call of sdk.upstream.calls("perplexity")) await sdk.upstream.socketClosedAt(call, 2_000)
    sdk.upstream.on("perplexity", { transcript: "perplexity-stream" })
    const next = await sdk.client.chat.completions.create({
      model: "perplexity/sonar",
      messages: ask(),
      n: 2,
    })
    expect(next.choices).toHaveLength(2)
  })

  it("an Idempotency-Key retry finds all n choices again (no new upstream calls)", async () => {
    sdk.upstream.on("openai", twoRecordings("openai-chat-stream", "openai-chat-stream-2024"))
    const request = { model: "openai/gpt-4o-mini", messages: ask(), n: 2 }
    const options = { headers: { "Idempotency-Key": `n-${crypto.randomUUID()}` } }
    const first = await sdk.client.chat.completions.create(request, options)
    const again = await sdk.client.chat.completions.create(request, options)
    expect(again.choices.map((c) => c.message.content)).toEqual(first.choices.map((c) => c.message.content))
    expect(sdk.upstream.calls("openai")).toHaveLength(2)
  })

  it("validates n: an integer from 1 to 8, else 400 naming n", async () => {
    for (const n of [0, 9, 1.5, -1]) {
      const error = await sdk.client.chat.completions
        .create({ model: "mock/faststream-ttft", messages: ask(), n })
        .catch((e: unknown) => e)
      expect(error, `n = ${n}`).toBeInstanceOf(OpenAI.BadRequestError)
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n")
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toContain(
        "n must be an integer from 1 to 8",
      )
    }
    const one = await sdk.client.chat.completions.create({
      model: "mock/faststream-ttft",
      messages: ask(),
      n: 1,
    })
    expect(one.choices).toHaveLength(1)
  })
})
