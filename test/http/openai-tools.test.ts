import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { type ExpectedCall, expectations } from "../providers/expectations.ts"
import { defaultTranscripts, type FakeProvider } from "../support/fake-upstream.ts"
import { sdkGateway } from "../support/sdk-gateway.ts"

/**
 * Tool calls and images through DAC with the official `openai` SDK, on every wire protocol: the
 * provider's side is the recorded bytes (fake sdk.upstream), the client's side the SDK unchanged.
 */

const sdk = sdkGateway({
  OPENAI_MODELS: "gpt-4o, gpt-4o-mini",
  MODEL_ALIASES: "fast=mock/faststream-ttft",
  MAX_IMAGE_BYTES: "1000",
})

const weather: OpenAI.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer" } },
      required: ["city"],
    },
  },
}

interface Protocol {
  readonly provider: FakeProvider
  readonly model: string
  readonly stream: string
  readonly nonStream: string
}

const protocols: ReadonlyArray<Protocol> = [
  {
    provider: "openai",
    model: "openai/gpt-4o",
    stream: "openai-chat-stream-tool-calls",
    nonStream: "openai-chat-nonstream-tool-calls",
  },
  {
    provider: "anthropic",
    model: "anthropic/claude-3-5-sonnet",
    stream: "anthropic-messages-stream-tool-use",
    nonStream: "anthropic-messages-nonstream-tool-use",
  },
  {
    provider: "gemini",
    model: "gemini/gemini-3-pro-preview",
    stream: "gemini-stream-function-call",
    nonStream: "gemini-nonstream-function-call-parallel",
  },
]

const callsOf = (transcript: string): ReadonlyArray<ExpectedCall> => {
  const expected = expectations[transcript]!
  return "toolCalls" in expected ? (expected.toolCalls ?? []) : []
}

/** The SDK's tool calls against the recorded ones; a signature rides in the id (`{id}~ts~{sig}`). */
const expectCalls = (
  calls: ReadonlyArray<OpenAI.ChatCompletionMessageToolCall> | undefined,
  expected: ReadonlyArray<ExpectedCall>,
) => {
  expect(calls?.length).toBe(expected.length)
  for (const [index, call] of (calls ?? []).entries()) {
    const want = expected[index]!
    if (call.type !== "function") throw new Error("expected a function call")
    const [id, signature] = call.id.split("~ts~")
    expect(id).toBe(want.id)
    expect(call.function).toEqual({ name: want.name, arguments: want.arguments })
    if (want.signature === undefined) expect(signature).toBeUndefined()
    else expect(signature).toMatch(want.signature)
  }
}

const ask = (text: string): Array<OpenAI.ChatCompletionMessageParam> => [
  { role: "user", content: `${text} ${crypto.randomUUID()}` },
]

describe.each(protocols)("tool calls through DAC on $provider", (protocol) => {
  it("assembles streamed tool calls: stream(…).finalChatCompletion()", async () => {
    sdk.upstream.on(protocol.provider, { transcript: protocol.stream, split: "random", maxWrite: 40 })
    const stream = sdk.client.chat.completions.stream({
      model: protocol.model,
      messages: ask("weather?"),
      tools: [weather],
    })
    const chunks: Array<OpenAI.ChatCompletionChunk> = []
    stream.on("chunk", (chunk) => chunks.push(chunk))
    const completion = await stream.finalChatCompletion()
    const choice = completion.choices[0]!
    expect(choice.finish_reason).toBe("tool_calls")
    expectCalls(choice.message.tool_calls, callsOf(protocol.stream))
    // The first chunk names the role; each call's first fragment carries id, type and name.
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant")
    const firsts = chunks
      .flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
      .filter((t) => t.id !== undefined)
    expect(firsts.every((t) => t.type === "function" && typeof t.function?.name === "string")).toBe(true)
    expect(firsts.length).toBe(callsOf(protocol.stream).length)
    // What the provider was asked: the tool in its own vocabulary.
    const sent = sdk.upstream.calls(protocol.provider)[0]!.body as Record<string, unknown>
    expect(JSON.stringify(sent)).toContain("get_weather")
  })

  it("answers message.tool_calls without streaming", async () => {
    sdk.upstream.on(protocol.provider, { transcript: protocol.nonStream })
    const completion = await sdk.client.chat.completions.create({
      model: protocol.model,
      messages: ask("weather?"),
      tools: [weather],
      tool_choice: "auto",
    })
    const choice = completion.choices[0]!
    expect(choice.finish_reason).toBe("tool_calls")
    expectCalls(choice.message.tool_calls, callsOf(protocol.nonStream))
    const expected = expectations[protocol.nonStream]!
    const text = "text" in expected && typeof expected.text === "string" ? expected.text : ""
    expect(choice.message.content).toBe(text === "" ? null : text)
  })

  it("runs a two-step tool loop: the results reach the provider in its own shape", async () => {
    sdk.upstream.on(protocol.provider, (_request, index) => ({
      transcript: index === 0 ? protocol.stream : defaultTranscripts[protocol.provider],
    }))
    const messages = ask("weather?")
    const first = await sdk.client.chat.completions
      .stream({ model: protocol.model, messages, tools: [weather] })
      .finalChatCompletion()
    const assistant = first.choices[0]!.message
    const calls = assistant.tool_calls ?? []
    const results: Array<OpenAI.ChatCompletionMessageParam> = calls.map((call, i) => ({
      role: "tool",
      tool_call_id: call.id,
      content: `result ${i}`,
    }))
    const second = await sdk.client.chat.completions.create({
      model: protocol.model,
      messages: [...messages, assistant, ...results],
      tools: [weather],
    })
    expect(second.choices[0]!.finish_reason).toBe("stop")
    expect(second.choices[0]!.message.content).not.toBe("")

    const expected = callsOf(protocol.stream)
    const body = sdk.upstream.calls(protocol.provider)[1]!.body as Record<string, never>
    switch (protocol.provider) {
      case "openai": {
        const sent = body.messages as Array<Record<string, unknown>>
        expect(sent[1]).toMatchObject({
          role: "assistant",
          tool_calls: expected.map((call) => ({
            id: call.id,
            type: "function",
            function: { name: call.name, arguments: call.arguments },
          })),
        })
        expect(sent.slice(2)).toEqual(
          expected.map((call, i) => ({ role: "tool", tool_call_id: call.id, content: `result ${i}` })),
        )
        break
      }
      case "anthropic": {
        const sent = body.messages as Array<{ role: string; content: Array<Record<string, unknown>> }>
        expect(sent).toHaveLength(3)
        expect(sent[1]!.role).toBe("assistant")
        expect(sent[1]!.content.filter((b) => b.type === "tool_use")).toEqual(
          expected.map((call) => ({
            type: "tool_use",
            id: call.id,
            name: call.name,
            input: JSON.parse(call.arguments),
          })),
        )
        // Every result in one user turn.
        expect(sent[2]).toEqual({
          role: "user",
          content: expected.map((call, i) => ({
            type: "tool_result",
            tool_use_id: call.id,
            content: `result ${i}`,
          })),
        })
        break
      }
      case "gemini": {
        const sent = body.contents as Array<{ role: string; parts: Array<Record<string, unknown>> }>
        expect(sent).toHaveLength(3)
        const signature = (calls[0]!.id.split("~ts~")[1] ?? "") as string
        expect(signature.length).toBeGreaterThan(100)
        expect(sent[1]).toEqual({
          role: "model",
          parts: expected.map((call, i) => ({
            functionCall: { id: call.id, name: call.name, args: JSON.parse(call.arguments) },
            ...(i === 0 ? { thoughtSignature: signature } : {}),
          })),
        })
        expect(sent[2]).toEqual({
          role: "user",
          parts: expected.map((call, i) => ({
            functionResponse: { id: call.id, name: call.name, response: { result: `result ${i}` } },
          })),
        })
        break
      }
    }
  })

  it("passes an image on", async () => {
    const pixel =
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    const completion = await sdk.client.chat.completions.create({
      model: protocol.model,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: `What is this? ${crypto.randomUUID()}` },
            { type: "image_url", image_url: { url: `data:image/png;base64,${pixel}`, detail: "low" } },
          ],
        },
      ],
      stream: true,
    })
    for await (const _ of completion) {
      // Drained: the provider's body is what is checked.
    }
    const body = JSON.stringify(sdk.upstream.calls(protocol.provider)[0]!.body)
    const expected = {
      openai: `{"type":"image_url","image_url":{"url":"data:image/png;base64,${pixel}","detail":"low"}}`,
      anthropic: `{"type":"image","source":{"type":"base64","media_type":"image/png","data":"${pixel}"}}`,
      gemini: `{"inlineData":{"mimeType":"image/png","data":"${pixel}"}}`,
    }[protocol.provider as "openai" | "anthropic" | "gemini"]
    expect(body).toContain(expected)
  })
})

describe("the mock's tool loop, end to end (no network)", () => {
  it("calls the tool with arguments fitting its schema, then quotes the result", async () => {
    const messages = ask("weather in Paris?")
    const first = await sdk.client.chat.completions
      .stream({ model: "mock/tools", messages, tools: [weather] })
      .finalChatCompletion()
    const assistant = first.choices[0]!.message
    expect(first.choices[0]!.finish_reason).toBe("tool_calls")
    expect(assistant.content).toBeNull()
    const call = assistant.tool_calls?.[0]
    if (call?.type !== "function") throw new Error("expected a function call")
    expect(call.function.name).toBe("get_weather")
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "sample" })

    const second = await sdk.client.chat.completions.create({
      model: "mock/tools",
      messages: [...messages, assistant, { role: "tool", tool_call_id: call.id, content: "22 °C and sunny" }],
      tools: [weather],
    })
    expect(second.choices[0]!.finish_reason).toBe("stop")
    expect(second.choices[0]!.message.content).toBe('The tool said: "22 °C and sunny"')
  })
})

describe("tool turns and the coalescer", () => {
  it("two identical concurrent requests with tools make two upstream calls (bypass)", async () => {
    const messages = ask("same")
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        sdk.client.chat.completions.create({ model: "mock/tools", messages, tools: [weather] }),
      ),
    )
    // The mock numbers its calls: one shared call would have given both the same id.
    expect(a!.choices[0]!.message.tool_calls?.[0]?.id).not.toBe(b!.choices[0]!.message.tool_calls?.[0]?.id)
  })
})

describe("what /v1 refuses, in OpenAI's shape", () => {
  it("JSON output on a provider without it names the provider; n past its bound names n", async () => {
    const json = await sdk.client.chat.completions
      .create({ model: "mock/faststream-ttft", messages: ask("x"), response_format: { type: "json_object" } })
      .catch((e: unknown) => e)
    expect(json).toBeInstanceOf(OpenAI.BadRequestError)
    expect((json as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('provider "mock"')
    const n = await sdk.client.chat.completions
      .create({ model: "openai/gpt-4o", messages: ask("x"), n: 9 })
      .catch((e: unknown) => e)
    expect(n).toBeInstanceOf(OpenAI.BadRequestError)
    expect((n as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n")
    expect(sdk.upstream.calls()).toHaveLength(0)
  })

  it("an image past MAX_IMAGE_BYTES is 413 image_too_large", async () => {
    const big = Buffer.alloc(2000, 7).toString("base64")
    const error = await sdk.client.chat.completions
      .create({
        model: "openai/gpt-4o",
        messages: [
          {
            role: "user",
            content: [{ type: "image_url", image_url: { url: `data:image/png;base64,${big}` } }],
          },
        ],
      })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.APIError)
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(413)
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("image_too_large")
  })

  it("a tool message without its call id", async () => {
    const error = await sdk.client.chat.completions
      .create({
        model: "openai/gpt-4o",
        // biome-ignore lint/suspicious/noExplicitAny: deliberately not what the SDK's types allow
        messages: [{ role: "tool", content: "x" } as any],
      })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.BadRequestError)
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("messages[0].tool_call_id")
  })
})

describe("GET /v1/models", () => {
  it("lists configured models, the mock's and the aliases; retrieves one; 404 in OpenAI's shape", async () => {
    const ids: Array<string> = []
    for await (const model of sdk.client.models.list()) ids.push(model.id)
    expect(ids).toEqual(
      expect.arrayContaining([
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "mock/faststream-ttft",
        "mock/tools",
        "fast",
      ]),
    )
    const one = await sdk.client.models.retrieve("openai/gpt-4o")
    expect(one).toMatchObject({ id: "openai/gpt-4o", object: "model", owned_by: "openai" })
    expect((await sdk.client.models.retrieve("fast")).owned_by).toBe("mock")
    await expect(sdk.client.models.retrieve("nope/none")).rejects.toBeInstanceOf(OpenAI.NotFoundError)
  })

  it("answers unknown /v1 routes and methods in OpenAI's error shape", async () => {
    for (const [method, path] of [
      ["GET", "/v1/nothing-here"],
      ["GET", "/v1/chat/completions"],
      ["DELETE", "/v1/models"],
    ] as const) {
      const response = await fetch(`${sdk.gateway.baseUrl}${path}`, {
        method,
        headers: { authorization: "Bearer sk-dac-test" },
      })
      expect(response.status, `${method} ${path}`).toBeGreaterThanOrEqual(400)
      const body = (await response.json()) as { error: Record<string, unknown> }
      expect(Object.keys(body.error).sort(), `${method} ${path}`).toEqual([
        "code",
        "message",
        "param",
        "type",
      ])
    }
  })
})
