import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { sdkGateway } from "../support/sdk-gateway.ts"

const tokens = 6
const sdk = sdkGateway({
  MOCK_TOKENS: String(tokens),
  MOCK_TTFT_MS: "5",
  MOCK_TOKEN_INTERVAL_MS: "1",
  MOCK_CONCURRENCY: "1",
  MOCK_MAX_QUEUE: "0",
  MODEL_ALIASES: "fast=mock/faststream-ttft, gpt-4o-mini=openai/gpt-4o-mini",
})

describe("the OpenAI-compatible endpoint, through the official SDK", () => {
  it("answers a non-streaming completion", async () => {
    const completion = await sdk.client.chat.completions.create({
      model: "mock/faststream-ttft",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: `hello ${crypto.randomUUID()}` },
      ],
    })
    expect(completion.object).toBe("chat.completion")
    expect(completion.choices[0]!.message).toMatchObject({
      role: "assistant",
      content: mockReplyText(tokens),
    })
    expect(completion.choices[0]!.finish_reason).toBe("stop")
    expect(completion.usage?.completion_tokens).toBe(tokens)
    expect(completion.usage?.total_tokens).toBe((completion.usage?.prompt_tokens ?? 0) + tokens)
  })

  it("streams chunks the SDK iterates, with usage when asked", async () => {
    const stream = await sdk.client.chat.completions.create({
      model: "mock/faststream-ttft",
      messages: [{ role: "user", content: `stream ${crypto.randomUUID()}` }],
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ""
    const finishes: Array<string | null> = []
    let usage: OpenAI.CompletionUsage | null | undefined
    const ids = new Set<string>()
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk")
      expect(chunk.model).toBe("mock/faststream-ttft")
      ids.add(chunk.id)
      if (chunk.choices[0]?.delta.content) {
        expect(chunk.choices[0]).toEqual({
          index: 0,
          delta: { content: chunk.choices[0].delta.content },
          finish_reason: null,
          logprobs: null,
        })
      }
      if (chunk.choices[0]) {
        text += chunk.choices[0].delta.content ?? ""
        finishes.push(chunk.choices[0].finish_reason)
      }
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe(mockReplyText(tokens))
    expect(finishes.filter((f) => f !== null)).toEqual(["stop"])
    expect(usage?.completion_tokens).toBe(tokens)
    expect(ids.size).toBe(1)
  })

  it("relays a real provider (OpenAI wire format) and coalesces identical conversations", async () => {
    sdk.upstream.on("openai", { transcript: "openai-chat-stream", firstByteDelayMs: 200 })
    const ask = () =>
      sdk.client.chat.completions.create({
        model: "openai/gpt-4o-mini",
        messages: [{ role: "user", content: "capital of the UK?" }],
      })
    const answers = await Promise.all([ask(), ask(), ask()])
    expect(new Set(answers.map((a) => a.choices[0]!.message.content))).toEqual(
      new Set(["The capital of the UK is London."]),
    )
    expect(sdk.upstream.calls("openai")).toHaveLength(1)
  })

  it("passes top_p and stop on to the provider, and refuses more than 4 stop sequences", async () => {
    sdk.upstream.on("openai", { transcript: "openai-chat-stream" })
    const completion = await sdk.client.chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content: `sampling ${crypto.randomUUID()}` }],
      top_p: 0.2,
      stop: "\n",
    })
    expect(completion.choices[0]!.message.content).toBe("The capital of the UK is London.")
    expect(sdk.upstream.calls("openai")[0]!.body).toMatchObject({ top_p: 0.2, stop: ["\n"] })
    const error = await sdk.client.chat.completions
      .create({
        model: "openai/gpt-4o-mini",
        messages: [{ role: "user", content: "x" }],
        stop: ["a", "b", "c", "d", "e"],
      })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.BadRequestError)
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toContain(
      "at most 4 stop sequences",
    )
  })

  it("an aborted stream closes the upstream socket", async () => {
    sdk.upstream.on("openai", {
      transcript: "openai-chat-stream",
      split: "random",
      maxWrite: 20,
      writeDelayMs: 50,
    })
    const controller = new AbortController()
    const stream = await sdk.client.chat.completions.create(
      {
        model: "openai/gpt-4o-mini",
        messages: [{ role: "user", content: `abort ${crypto.randomUUID()}` }],
        stream: true,
      },
      { signal: controller.signal },
    )
    const iterator = stream[Symbol.asyncIterator]()
    for (;;) {
      const next = await iterator.next()
      if (next.done || next.value.choices[0]?.delta.content) break
    }
    const abortedAt = performance.now()
    controller.abort()
    const call = sdk.upstream.calls("openai").at(-1)!
    const closedAt = await sdk.upstream.socketClosedAt(call, 2_000)
    expect(closedAt - abortedAt).toBeLessThan(1_000)
  })

  it("routes a configured alias and echoes the alias as the model", async () => {
    const completion = await sdk.client.chat.completions.create({
      model: "fast",
      messages: [{ role: "user", content: `alias ${crypto.randomUUID()}` }],
    })
    expect(completion.model).toBe("fast")
    expect(completion.choices[0]!.message.content).toBe(mockReplyText(tokens))

    // An alias named like an OpenAI model reaches that provider with the target's model.
    sdk.upstream.on("openai", { transcript: "openai-chat-stream" })
    const relayed = await sdk.client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `alias ${crypto.randomUUID()}` }],
    })
    expect(relayed.model).toBe("gpt-4o-mini")
    expect(relayed.choices[0]!.message.content).toBe("The capital of the UK is London.")
    expect(sdk.upstream.calls("openai")).toHaveLength(1)
    expect(sdk.upstream.calls("openai")[0]!.body).toMatchObject({ model: "gpt-4o-mini" })
  })

  it("streams through an alias", async () => {
    const stream = await sdk.client.chat.completions.create({
      model: "fast",
      messages: [{ role: "user", content: `alias stream ${crypto.randomUUID()}` }],
      stream: true,
    })
    let text = ""
    const models = new Set<string>()
    for await (const chunk of stream) {
      models.add(chunk.model)
      text += chunk.choices[0]?.delta.content ?? ""
    }
    expect(text).toBe(mockReplyText(tokens))
    expect(models).toEqual(new Set(["fast"]))
  })

  it("refuses a model that is neither an alias nor provider/model, naming the aliases", async () => {
    const error = await sdk.client.chat.completions
      .create({ model: "gpt-5-turbo", messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.BadRequestError)
    const bad = error as InstanceType<typeof OpenAI.BadRequestError>
    expect(bad.status).toBe(400)
    expect(bad.code).toBe("model_not_found")
    expect(bad.message).toContain('or a configured alias (fast, gpt-4o-mini), got "gpt-5-turbo"')
  })

  it("refuses a parameter it would have to drop, naming it, and accepts the same parameter at its default", async () => {
    const messages = [{ role: "user" as const, content: `params ${crypto.randomUUID()}` }]
    const refused = async (params: Record<string, unknown>) => {
      const error = await sdk.client.chat.completions
        .create({ model: "mock/faststream-ttft", messages, ...params })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(OpenAI.BadRequestError)
      return error as InstanceType<typeof OpenAI.BadRequestError>
    }
    const functions = await refused({
      functions: [{ name: "lookup", parameters: { type: "object" } }],
    })
    expect(functions.code).toBe("unsupported_parameter")
    expect(functions.param).toBe("functions")
    expect(functions.message).toContain('"functions" is not supported')
    // JSON output is passed on where the provider has it; the mock has none, and says so.
    const json = await refused({ response_format: { type: "json_object" } })
    expect(json.code).toBe("unsupported_parameter")
    expect(json.message).toContain('not supported by provider "mock"')
    // n > 1 is served (test/http/openai-n.test.ts); past its bound it is refused, naming n.
    expect((await refused({ n: 9 })).param).toBe("n")
    expect((await refused({ stream: true, logprobs: true })).param).toBe("logprobs")

    // Defaults some clients always send, and fields that do not change an answer, are accepted.
    const completion = await sdk.client.chat.completions.create({
      model: "mock/faststream-ttft",
      messages,
      tools: [],
      tool_choice: "auto",
      response_format: { type: "text" },
      presence_penalty: 0,
      frequency_penalty: 0,
      logprobs: false,
      stop: null,
      seed: 7,
      user: "someone",
    })
    expect(completion.choices[0]!.message.content).toBe(mockReplyText(tokens))
  })

  it("raises the SDK's own typed errors", async () => {
    await expect(
      sdk.client.chat.completions.create({
        model: "gpt-without-provider",
        messages: [{ role: "user", content: "x" }],
      }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    await expect(
      sdk.client.chat.completions.create({ model: "mock/faststream-ttft", messages: [] }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    // The SDK refuses to send without a key, so the anonymous request goes out by hand.
    const anonymous = await fetch(`${sdk.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock/faststream-ttft", messages: [{ role: "user", content: "x" }] }),
    })
    expect(anonymous.status).toBe(401)
    expect(((await anonymous.json()) as { error: { type: string } }).error.type).toBe("authentication_error")

    // The only mock slot is held and the queue is 0 long: the next request is refused with a 429.
    const holder = new AbortController()
    const held = await sdk.client.chat.completions.create(
      {
        model: "mock/never-ending",
        messages: [{ role: "user", content: `hold ${crypto.randomUUID()}` }],
        stream: true,
      },
      { signal: holder.signal },
    )
    const reading = (async () => {
      try {
        for await (const _ of held) {
          // keep the slot busy
        }
      } catch {
        // aborted below
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 100))
    const limited = await sdk.client.chat.completions
      .create({
        model: "mock/faststream-ttft",
        messages: [{ role: "user", content: `one more ${crypto.randomUUID()}` }],
      })
      .catch((error: unknown) => error)
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError)
    expect((limited as InstanceType<typeof OpenAI.RateLimitError>).headers?.get("retry-after")).toBeTruthy()
    holder.abort()
    await reading
  })
})
