import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type ExpectedCall, expectations } from "../providers/expectations.ts"
import {
  defaultTranscripts,
  type FakeProvider,
  type FakeUpstream,
  type RecordedRequest,
  startFakeUpstream,
} from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"
import { loadTranscript } from "../support/wire.ts"

/**
 * Tool loops and images on a stored thread, through the real HTTP server and the real adapters
 * against the recorded provider bytes (fake upstream): a turn ends in tool calls, the thread shows
 * them, the results are posted, and the next upstream request carries calls and results in each
 * protocol's own shape; the conversation reloaded from the store is the one kept in memory.
 */

let upstream: FakeUpstream
let gateway: RunningGateway
const env = () => ({
  ...upstream.env(),
  MOCK_TTFT_MS: "1",
  MOCK_TOKEN_INTERVAL_MS: "0",
  MAX_IMAGE_BYTES: "1000",
  OPENAI_RPS: "1000",
  OPENAI_BURST: "1000",
  ANTHROPIC_RPS: "1000",
  ANTHROPIC_BURST: "1000",
  GEMINI_RPS: "1000",
  GEMINI_BURST: "1000",
  REPLY_SAVE_INTERVAL_MS: "50",
})
beforeAll(async () => {
  upstream = await startFakeUpstream()
  gateway = await startGateway(env())
})
afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
})
beforeEach(() => upstream.reset())

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}
const clock = { type: "function", function: { name: "get_time", parameters: { type: "object" } } }
const tools = [weather, clock]

// biome-ignore lint/suspicious/noExplicitAny: upstream bodies are asserted shape by shape
type Body = any

interface Protocol {
  readonly provider: FakeProvider
  readonly model: string
  /** The transcript of a reply that calls tools. */
  readonly calls: string
  /** Whether an upstream body already carries tool results (then the fake answers with text). */
  readonly answered: (body: Body) => boolean
  /** Checks the upstream body that carries the calls and their results. */
  readonly expectResults: (
    body: Body,
    calls: ReadonlyArray<ExpectedCall>,
    results: ReadonlyArray<string>,
  ) => void
  /** Checks the upstream body of a user message with an image. */
  readonly expectImage: (body: Body, data: string) => void
}

const protocols: ReadonlyArray<Protocol> = [
  {
    provider: "openai",
    model: "gpt-4o",
    calls: "openai-chat-stream-tool-calls",
    answered: (body) => body.messages.some((m: Body) => m.role === "tool"),
    expectResults: (body, calls, results) => {
      expect(body.tools.map((t: Body) => t.function.name)).toEqual(["get_weather", "get_time"])
      expect(body.messages[1]).toEqual({
        role: "assistant",
        content: null,
        tool_calls: calls.map((call) => ({
          id: call.id,
          type: "function",
          function: { name: call.name, arguments: call.arguments },
        })),
      })
      expect(body.messages.slice(2)).toEqual(
        calls.map((call, at) => ({ role: "tool", tool_call_id: call.id, content: results[at] })),
      )
    },
    expectImage: (body, data) =>
      expect(body.messages[0].content).toEqual([
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: `data:image/png;base64,${data}` } },
      ]),
  },
  {
    provider: "anthropic",
    model: "claude-3-5-sonnet",
    calls: "anthropic-messages-stream-tool-use",
    answered: (body) =>
      body.messages.some(
        (m: Body) => Array.isArray(m.content) && m.content.some((b: Body) => b.type === "tool_result"),
      ),
    expectResults: (body, calls, results) => {
      const text = expectations["anthropic-messages-stream-tool-use"]
      expect(body.messages[1]).toEqual({
        role: "assistant",
        content: [
          { type: "text", text: "text" in text! ? text.text : "" },
          ...calls.map((call) => ({
            type: "tool_use",
            id: call.id,
            name: call.name,
            input: JSON.parse(call.arguments),
          })),
        ],
      })
      expect(body.messages[2]).toEqual({
        role: "user",
        content: calls.map((call, at) => ({
          type: "tool_result",
          tool_use_id: call.id,
          content: results[at],
        })),
      })
      expect(body.messages).toHaveLength(3)
    },
    expectImage: (body, data) =>
      expect(body.messages[0].content).toEqual([
        { type: "text", text: "what is this?" },
        { type: "image", source: { type: "base64", media_type: "image/png", data } },
      ]),
  },
  {
    provider: "gemini",
    model: "gemini-3-pro-preview",
    calls: "gemini-stream-function-call",
    answered: (body) => body.contents.some((c: Body) => c.parts.some((p: Body) => "functionResponse" in p)),
    expectResults: (body, calls, results) => {
      expect(body.contents[1].role).toBe("model")
      expect(body.contents[1].parts).toEqual(
        calls.map((call) => ({
          functionCall: { id: call.id, name: call.name, args: JSON.parse(call.arguments) },
          thoughtSignature: expect.stringMatching(call.signature!),
        })),
      )
      expect(body.contents[2]).toEqual({
        role: "user",
        parts: calls.map((call, at) => ({
          functionResponse: { id: call.id, name: call.name, response: JSON.parse(results[at]!) },
        })),
      })
    },
    expectImage: (body, data) =>
      expect(body.contents[0].parts).toEqual([
        { text: "what is this?" },
        { inlineData: { mimeType: "image/png", data } },
      ]),
  },
]

/** The protocol's fake answers a body with tools and no results with its tool calls, anything else with text. */
const script = (protocol: Protocol) => (request: RecordedRequest) => ({
  transcript:
    (request.body as Body).tools !== undefined && !protocol.answered(request.body)
      ? protocol.calls
      : defaultTranscripts[protocol.provider],
})

const callsOf = (transcript: string): ReadonlyArray<ExpectedCall> => {
  const expected = expectations[transcript]!
  return "toolCalls" in expected ? (expected.toolCalls ?? []) : []
}
const textOf = (transcript: string) => {
  const expected = expectations[transcript]!
  return "text" in expected ? expected.text : undefined
}

const newThread = async (org = `org-${crypto.randomUUID()}`, base = gateway.baseUrl) => {
  const c = api(base, org)
  return { c, org, threadId: (await c.post("/api/threads", {})).json.thread_id as string }
}

/** A small PNG (the one of the Anthropic image recording), base64. */
const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

const lastBody = (provider: FakeProvider): Body => upstream.calls(provider).at(-1)!.body

describe.each(protocols)("a tool loop on a thread, $provider", (protocol) => {
  it("streams tool calls, stores them, takes the results and sends calls and results upstream in the protocol's shape", async () => {
    upstream.on(protocol.provider, script(protocol))
    const { c, org, threadId } = await newThread()
    const expected = callsOf(protocol.calls)
    const ask = {
      role: "user",
      content: "weather and time?",
      provider: protocol.provider,
      model: protocol.model,
    }

    // 1. A streamed turn that ends in tool calls.
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify({ ...ask, tools }),
    })
    await stream.done
    const meta = stream.events.find((e) => e.event === "meta")!
    expect(meta.data.coalesce).toBe("bypass")
    const firsts = stream.events.filter((e) => e.event === "tool_call" && e.data.id !== undefined)
    expect(firsts.map((e) => [e.data.index, e.data.id, e.data.name])).toEqual(
      expected.map((call, at) => [at, call.id, call.name]),
    )
    const done = stream.events.at(-1)!
    expect(done.event).toBe("done")
    expect(done.data.finish_reason).toBe("tool_calls")
    const usage = expectations[protocol.calls]!
    expect(done.data.usage).toEqual("usage" in usage ? usage.usage : null)

    // 2. The thread shows the calls.
    const shown = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(shown).toHaveLength(2)
    expect(shown[0]).not.toHaveProperty("tool_calls")
    expect(shown[1]).toMatchObject({
      role: "assistant",
      status: "complete",
      finish_reason: "tool_calls",
      usage: "usage" in usage ? usage.usage : null,
      content: textOf(protocol.calls),
      tool_calls: expected.map((call) => ({
        id: call.id,
        type: "function",
        function: { name: call.name, arguments: call.arguments },
      })),
    })

    // 3. The results, in one send.
    const results = expected.map((call) => JSON.stringify({ answer: `${call.name} ok` }))
    const sent = await c.post(`/api/threads/${threadId}/messages`, {
      role: "tool",
      tool_results: expected.map((call, at) => ({ tool_call_id: call.id, content: results[at] })),
      provider: protocol.provider,
      model: protocol.model,
      tools,
    })
    expect(sent.status).toBe(200)
    expect(sent.json.coalesce).toBe("bypass")
    expect(sent.json.tool_messages.map((m: Body) => [m.role, m.tool_call_id, m.content])).toEqual(
      expected.map((call, at) => ["tool", call.id, results[at]]),
    )
    expect(sent.json.user_message.message_id).toBe(sent.json.tool_messages[0].message_id)
    expect(sent.json.assistant_message).toMatchObject({ status: "complete", finish_reason: "stop" })
    expect(sent.json.assistant_message).not.toHaveProperty("tool_calls")
    const finalText = sent.json.assistant_message.content
    expect(finalText).toBe(textOf(defaultTranscripts[protocol.provider]))

    // 4. The second upstream request, as the provider received it.
    expect(upstream.calls(protocol.provider)).toHaveLength(2)
    protocol.expectResults(lastBody(protocol.provider), expected, results)

    // 5. Everything is stored.
    const thread = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(thread.map((m: Body) => [m.role, m.status, m.tool_call_id ?? null])).toEqual([
      ["user", "complete", null],
      ["assistant", "complete", null],
      ...expected.map((call) => ["tool", "complete", call.id]),
      ["assistant", "complete", null],
    ])
    expect(thread.at(-1).content).toBe(finalText)
  })

  it("a conversation reloaded by a new gateway on the same store goes upstream as the one in memory", async () => {
    upstream.on(protocol.provider, script(protocol))
    const expected = callsOf(protocol.calls)
    const org = `org-${crypto.randomUUID()}`
    /** The same tool loop, with an image, on a new thread. */
    const loop = async () => {
      const { c, threadId } = await newThread(org)
      const path = `/api/threads/${threadId}/messages`
      const base = { provider: protocol.provider, model: protocol.model }
      const content = [
        { type: "text", text: "look" },
        { type: "image_url", image_url: { url: `data:image/png;base64,${png}`, detail: "low" } },
      ]
      expect((await c.post(path, { ...base, role: "user", content, tools })).status).toBe(200)
      const results = expected.map((call) => ({ tool_call_id: call.id, content: `result of ${call.name}` }))
      expect((await c.post(path, { ...base, role: "tool", tool_results: results, tools })).status).toBe(200)
      return { path, base }
    }
    const inMemory = await loop()
    const reloaded = await loop()

    const next = { role: "user", content: "thanks", tools }
    const c = api(gateway.baseUrl, org)
    expect((await c.post(inMemory.path, { ...inMemory.base, ...next })).status).toBe(200)
    const fromMemory = lastBody(protocol.provider)
    const other = await startGateway(env())
    try {
      const again = await api(other.baseUrl, org).post(reloaded.path, { ...reloaded.base, ...next })
      expect(again.status).toBe(200)
    } finally {
      await other.close()
    }
    const fromStore = lastBody(protocol.provider)
    expect(upstream.calls(protocol.provider)).toHaveLength(6)
    expect(JSON.stringify(fromStore)).toContain(png)
    // Gemini's signature of the call came back from the store with it.
    if (protocol.provider === "gemini") expect(JSON.stringify(fromStore)).toMatch(/"thoughtSignature":"EpwI/)
    expect(fromStore).toEqual(fromMemory)
  })

  it("a user message with an image reaches the provider in its shape, and the thread shows its parts", async () => {
    const { c, threadId } = await newThread()
    const content = [
      { type: "text", text: "what is this?" },
      { type: "image_url", image_url: { url: `data:image/png;base64,${png}` } },
    ]
    const sent = await c.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content,
      provider: protocol.provider,
      model: protocol.model,
    })
    expect(sent.status).toBe(200)
    protocol.expectImage(lastBody(protocol.provider), png)
    expect(sent.json.user_message).toMatchObject({ content: "what is this?", parts: content })
    const thread = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(thread[0]).toMatchObject({ role: "user", content: "what is this?", parts: content })
    expect(thread[1]).not.toHaveProperty("parts")
  })
})

describe("tool loops on threads", () => {
  it("the whole loop on mock/tools, with no network", async () => {
    const { c, threadId } = await newThread()
    const path = `/api/threads/${threadId}/messages`
    const first = await c.post(path, {
      role: "user",
      content: "weather in Paris?",
      provider: "mock",
      model: "tools",
      tools: [weather],
    })
    expect(first.status).toBe(200)
    const call = first.json.assistant_message.tool_calls[0]
    expect(call).toEqual({
      id: expect.stringMatching(/^call_mock_/),
      type: "function",
      function: { name: "get_weather", arguments: '{"city":"sample"}' },
    })
    expect(first.json.assistant_message.finish_reason).toBe("tool_calls")
    // One result, sent as tool_call_id and content.
    const second = await c.post(path, {
      role: "tool",
      tool_call_id: call.id,
      content: "sunny, 21°C",
      provider: "mock",
      model: "tools",
      tools: [weather],
    })
    expect(second.status).toBe(200)
    expect(second.json.assistant_message.content).toBe('The tool said: "sunny, 21°C"')
    const thread = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(thread.map((m: Body) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
    expect(upstream.calls()).toHaveLength(0)
  })

  it("a reply with tool calls re-attached from the store (another gateway): its calls as tool_call events, then done", async () => {
    const { c, org, threadId } = await newThread()
    const sent = await c.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "weather in Lyon?",
      provider: "mock",
      model: "tools",
      tools: [weather],
    })
    expect(sent.status).toBe(200)
    const call = sent.json.assistant_message.tool_calls[0]
    // A gateway that never ran it has no live log: it serves the reply from the store.
    const other = await startGateway(env())
    try {
      const replay = openStream(`${other.baseUrl}/api/threads/${threadId}/stream/${sent.json.request_id}`, {
        headers: { "x-org-id": org },
      })
      await replay.done
      const events = replay.events.filter((e) => e.id >= 2)
      expect(events.map((e) => e.event)).toEqual(["tool_call", "done"])
      expect(events[0]!.data).toEqual({
        type: "tool_call",
        index: 0,
        id: call.id,
        name: "get_weather",
        arguments_delta: call.function.arguments,
      })
      expect(events[1]!.data).toMatchObject({ finish_reason: "tool_calls" })
      expect(events[1]!.id).toBe(events[0]!.id + 1)
    } finally {
      await other.close()
    }
  })

  it("a reply's tool calls are stored as it grows", async () => {
    const transcript = loadTranscript("openai-chat-stream-tool-calls")
    const body = Buffer.from(transcript.body).toString("utf8")
    // Everything up to the chunk that finishes the reply: both calls, then the upstream stalls.
    const finish = body.lastIndexOf("data: ", body.indexOf('"finish_reason":"tool_calls"'))
    upstream.on("openai", { transcript: "openai-chat-stream-tool-calls", hangAfterBytes: finish })
    const { c, org, threadId } = await newThread()
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify({ role: "user", content: "weather?", provider: "openai", model: "gpt-4o", tools }),
    })
    const expected = callsOf("openai-chat-stream-tool-calls")
    await stream.until((events) => events.filter((e) => e.event === "tool_call").length >= 7)
    let reply: Body
    for (let tries = 0; tries < 50; tries++) {
      reply = (await c.get(`/api/threads/${threadId}`)).json.messages[1]
      if (reply.tool_calls?.length === 2 && reply.tool_calls[1].function.arguments === "{}") break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(reply).toMatchObject({
      status: "streaming",
      tool_calls: expected.map((call) => ({
        id: call.id,
        function: { name: call.name, arguments: call.arguments },
      })),
    })
    stream.abort()
    await stream.done
  })

  it("results sent again after their reply failed: each call goes upstream answered once", async () => {
    const protocol = protocols[0]!
    const { c, threadId } = await newThread()
    const path = `/api/threads/${threadId}/messages`
    const openai = { provider: "openai", model: "gpt-4o" }
    upstream.on("openai", (request, index) =>
      index === 1 ? { transcript: "openai-error-401" } : script(protocol)(request),
    )
    expect((await c.post(path, { ...openai, role: "user", content: "both?", tools })).status).toBe(200)
    const expected = callsOf(protocol.calls)
    const results = expected.map((call) => ({ tool_call_id: call.id, content: `of ${call.name}` }))
    const failed = await c.post(path, { ...openai, role: "tool", tool_results: results, tools })
    expect(failed.status).toBe(502)
    const retried = await c.post(path, { ...openai, role: "tool", tool_results: results, tools })
    expect(retried.status).toBe(200)
    const sent = lastBody("openai").messages
    expect(sent.map((m: Body) => [m.role, m.tool_call_id ?? null])).toEqual([
      ["user", null],
      ["assistant", null],
      ...expected.map((call) => ["tool", call.id]),
    ])
    // The thread keeps what happened: both sends of the results, the failed reply between them.
    const thread = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(thread.map((m: Body) => [m.role, m.status])).toEqual([
      ["user", "complete"],
      ["assistant", "complete"],
      ...expected.map(() => ["tool", "complete"]),
      ["assistant", "failed"],
      ...expected.map(() => ["tool", "complete"]),
      ["assistant", "complete"],
    ])
  })

  it("/openapi.json describes the structured payloads", async () => {
    const doc = (await api(gateway.baseUrl, undefined).get("/openapi.json")).json
    const text = JSON.stringify(doc)
    for (const field of [
      "tool_results",
      "tool_call_id",
      "tool_calls",
      "parts",
      "tool_messages",
      "image_url",
    ]) {
      expect(text).toContain(`"${field}"`)
    }
    const send = doc.paths["/api/threads/{thread_id}/messages"].post
    expect(JSON.stringify(send.requestBody)).toContain("ThreadTurnRequest")
  })

  it("identical sends with tools do not share a turn (bypass)", async () => {
    upstream.on("openai", { transcript: "openai-chat-stream", firstByteDelayMs: 50 })
    const { c, threadId } = await newThread()
    const send = { role: "user", content: "same", provider: "openai", model: "gpt-4o", tools }
    const both = await Promise.all([
      c.post(`/api/threads/${threadId}/messages`, send),
      c.post(`/api/threads/${threadId}/messages`, send),
    ])
    expect(both.map((r) => r.json.coalesce)).toEqual(["bypass", "bypass"])
    expect(upstream.calls("openai")).toHaveLength(2)
  })
})

describe("bad thread sends", () => {
  const expectError = (response: Body, status: number, code: string, message: RegExp) => {
    expect(response.status).toBe(status)
    expect(response.json.error.code).toBe(code)
    expect(response.json.error.message).toMatch(message)
  }
  const base = { provider: "mock", model: "tools" }

  /** A thread whose last reply called one tool (mock/tools). */
  const withCall = async () => {
    const { c, threadId } = await newThread()
    const path = `/api/threads/${threadId}/messages`
    const first = await c.post(path, { ...base, role: "user", content: "go", tools: [weather] })
    return { c, path, call: first.json.assistant_message.tool_calls[0].id as string }
  }

  it("a tool_call_id that matches no pending call → 400 naming it", async () => {
    const { c, path, call } = await withCall()
    expectError(
      await c.post(path, { ...base, role: "tool", tool_call_id: "call_nope", content: "x" }),
      400,
      "invalid_tool_result",
      new RegExp(`"call_nope" matches no pending tool call.*${call}`),
    )
    expectError(
      await c.post(path, {
        ...base,
        role: "tool",
        tool_results: [
          { tool_call_id: call, content: "a" },
          { tool_call_id: call, content: "b" },
        ],
      }),
      400,
      "invalid_tool_result",
      /tool_results\[1\]\.tool_call_id: .* is answered twice/,
    )
    // A user message before the results would leave the call unanswered for good.
    expectError(
      await c.post(path, { ...base, role: "user", content: "never mind" }),
      400,
      "invalid_tool_result",
      new RegExp(`last reply called tools \\("${call}" \\(get_weather\\)\\): send their results first`),
    )
    // Answered properly, the call is no longer pending: answering it again after a user turn is refused.
    expect((await c.post(path, { ...base, role: "tool", tool_call_id: call, content: "ok" })).status).toBe(
      200,
    )
    expect((await c.post(path, { ...base, role: "user", content: "and now?" })).status).toBe(200)
    expectError(
      await c.post(path, { ...base, role: "tool", tool_call_id: call, content: "late" }),
      400,
      "invalid_tool_result",
      /it made none/,
    )
  })

  it("a result missing for one of the calls → 400 naming it", async () => {
    upstream.on("openai", script(protocols[0]!))
    const { c, threadId } = await newThread()
    const path = `/api/threads/${threadId}/messages`
    const openai = { provider: "openai", model: "gpt-4o" }
    expect((await c.post(path, { ...openai, role: "user", content: "both?", tools })).status).toBe(200)
    const [first, second] = callsOf(protocols[0]!.calls)
    expectError(
      await c.post(path, {
        ...openai,
        role: "tool",
        tool_results: [{ tool_call_id: first!.id, content: "x" }],
      }),
      400,
      "invalid_tool_result",
      new RegExp(`no result for "${second!.id}" \\(get_product_name\\)`),
    )
    expect(upstream.calls("openai")).toHaveLength(1)
  })

  it("a tool message without tool_call_id, and tool fields on a user message → 400 naming the field", async () => {
    const { c, path } = await withCall()
    expectError(
      await c.post(path, { ...base, role: "tool", content: "x" }),
      400,
      "invalid_request",
      /tool_call_id: a tool message must name the call it answers/,
    )
    expectError(
      await c.post(path, { ...base, role: "tool", tool_results: [{ content: "x" }] }),
      400,
      "invalid_request",
      /tool_results\.0\.tool_call_id: Missing key/,
    )
    expectError(
      await c.post(path, { ...base, role: "tool", tool_results: [] }),
      400,
      "invalid_request",
      /tool_results: tool_results must not be empty/,
    )
    expectError(
      await c.post(path, { ...base, role: "user", content: "x", tool_call_id: "call_1" }),
      400,
      "invalid_request",
      /tool_call_id: only a tool message/,
    )
    expectError(await c.post(path, { ...base, role: "user" }), 400, "invalid_request", /content: Missing key/)
  })

  it("bad parts and bad tools → 400 naming them; a too large image → 413", async () => {
    const { c, threadId } = await newThread()
    const path = `/api/threads/${threadId}/messages`
    expectError(
      await c.post(path, {
        ...base,
        role: "user",
        content: [{ type: "image_url", image_url: { url: "ftp://example.com/a.png" } }],
      }),
      400,
      "invalid_request",
      /content.*an image url must be https:\/\/… or data:<type>;base64,…/,
    )
    expectError(
      await c.post(path, { ...base, role: "user", content: [{ type: "video", url: "x" }] }),
      400,
      "invalid_request",
      /content/,
    )
    expectError(
      await c.post(path, { ...base, role: "user", content: [] }),
      400,
      "invalid_request",
      /content: content must not be empty/,
    )
    expectError(
      await c.post(path, {
        ...base,
        role: "user",
        content: "x",
        tools: [{ type: "function", function: { name: "bad name!" } }],
      }),
      400,
      "invalid_request",
      /tools\.0\.function\.name: a function name must be 1-64 letters/,
    )
    expectError(
      await c.post(path, { provider: "perplexity", model: "sonar", role: "user", content: "x", tools }),
      400,
      "invalid_request",
      /tools are not supported by provider "perplexity"/,
    )
    const big = Buffer.alloc(1500, 7).toString("base64")
    expectError(
      await c.post(path, {
        ...base,
        role: "user",
        content: [
          { type: "text", text: "see" },
          { type: "image_url", image_url: { url: `data:image/png;base64,${big}` } },
        ],
      }),
      413,
      "image_too_large",
      /content\[1\]\.image_url is an image of 1500 bytes; the limit is 1000 \(MAX_IMAGE_BYTES\)/,
    )
    // Nothing of these was stored.
    expect((await c.get(`/api/threads/${threadId}`)).json.messages).toEqual([])
  })
})
