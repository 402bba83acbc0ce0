import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`
const other = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  gateway = await startGateway({
    MOCK_TOKENS: "8",
    MOCK_TTFT_MS: "5",
    MOCK_TOKEN_INTERVAL_MS: "1",
    MAX_CONTENT_CHARS: "1000",
  })
})
afterAll(() => gateway?.close())

const client = () => api(gateway.baseUrl, org)
const turn = (content = "hello", extra: Record<string, unknown> = {}) => ({
  role: "user",
  content,
  provider: "mock",
  model: "faststream-ttft",
  ...extra,
})

const newThread = async (title?: string) => {
  const created = await client().post("/api/threads", title === undefined ? undefined : { title })
  expect(created.status).toBe(201)
  return created.json.thread_id as string
}

const expectError = (
  response: { status: number; json: { error: { code: string; message: string } } },
  status: number,
  code: string,
  mentions?: string | RegExp,
) => {
  expect(response.status).toBe(status)
  expect(response.json.error.code).toBe(code)
  expect(typeof response.json.error.message).toBe("string")
  if (mentions !== undefined) expect(response.json.error.message).toMatch(mentions)
}

describe("threads", () => {
  it("creates a thread with or without a title, and with a trailing slash", async () => {
    const titled = await client().post("/api/threads", { title: "Trip" })
    expect(titled.status).toBe(201)
    expect(titled.json).toMatchObject({ title: "Trip" })
    expect(titled.json.thread_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(Date.parse(titled.json.created_at)).not.toBeNaN()

    const untitled = await client().post("/api/threads")
    expect(untitled.status).toBe(201)
    expect(untitled.json.title).toBeNull()

    const slash = await client().post("/api/threads/", { title: "slash" })
    expect(slash.status).toBe(201)
    expect(slash.json.title).toBe("slash")
  })

  it("lists the org's threads newest first, and only the org's", async () => {
    const listOrg = `org-${crypto.randomUUID()}`
    const c = api(gateway.baseUrl, listOrg)
    const first = await c.post("/api/threads", { title: "first" })
    const second = await c.post("/api/threads", { title: "second" })
    await api(gateway.baseUrl, other).post("/api/threads", { title: "someone else's" })
    const listed = await c.get("/api/threads")
    expect(listed.status).toBe(200)
    expect(listed.json.threads.map((t: { thread_id: string }) => t.thread_id)).toEqual([
      second.json.thread_id,
      first.json.thread_id,
    ])
  })

  it("runs a turn with the mock provider and persists both messages", async () => {
    const threadId = await newThread("chat")
    const sent = await client().post(`/api/threads/${threadId}/messages`, turn("What is DAC?"))
    expect(sent.status).toBe(200)
    const body = sent.json
    expect(body.coalesce).toBe("leader")
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(body.user_message).toMatchObject({ role: "user", content: "What is DAC?", status: "complete" })
    expect(body.assistant_message).toMatchObject({
      role: "assistant",
      content: mockReplyText(8),
      status: "complete",
      provider: "mock",
      model: "faststream-ttft",
      finish_reason: "stop",
      request_id: body.request_id,
    })
    expect(body.assistant_message.usage.output_tokens).toBe(8)
    expect(body.metrics.ttft_ms).toBeGreaterThan(0)
    expect(body.metrics.latency_ms).toBeGreaterThanOrEqual(body.metrics.ttft_ms)
    expect(body.metrics.queue_wait_ms).toBeGreaterThanOrEqual(0)

    const thread = await client().get(`/api/threads/${threadId}`)
    expect(thread.status).toBe(200)
    expect(
      thread.json.messages.map((m: { role: string; content: string; status: string }) => [m.role, m.status]),
    ).toEqual([
      ["user", "complete"],
      ["assistant", "complete"],
    ])
    expect(thread.json.messages[1].message_id).toBe(body.assistant_message.message_id)
    expect(thread.json.messages[1].usage).toEqual(body.assistant_message.usage)
  })

  it("keeps the conversation: a second turn follows the first in order", async () => {
    const threadId = await newThread()
    await client().post(`/api/threads/${threadId}/messages`, turn("one"))
    await client().post(`/api/threads/${threadId}/messages`, turn("two"))
    const thread = await client().get(`/api/threads/${threadId}`)
    expect(thread.json.messages.map((m: { role: string; content: string }) => m.role)).toEqual([
      "user",
      "assistant",
      "user",
      "assistant",
    ])
    expect(thread.json.messages[2].content).toBe("two")
  })

  it("persists the partial reply as failed when the provider fails mid-stream", async () => {
    const threadId = await newThread()
    const sent = await client().post(
      `/api/threads/${threadId}/messages`,
      turn("x", { model: "failing-midstream" }),
    )
    expectError(sent, 502, "upstream_stream_error", /mid-stream/)
    const thread = await client().get(`/api/threads/${threadId}`)
    const assistant = thread.json.messages.find((m: { role: string }) => m.role === "assistant")
    expect(assistant.status).toBe("failed")
    expect(assistant.error_code).toBe("upstream_stream_error")
    expect(assistant.content).toBe(mockReplyText(4))
  })
})

describe("isolation across orgs", () => {
  it("answers 404 for another org's thread, on read and on write", async () => {
    const threadId = await newThread("private")
    const intruder = api(gateway.baseUrl, other)
    expectError(await intruder.get(`/api/threads/${threadId}`), 404, "thread_not_found")
    expectError(await intruder.post(`/api/threads/${threadId}/messages`, turn()), 404, "thread_not_found")
    const thread = await client().get(`/api/threads/${threadId}`)
    expect(thread.json.messages).toEqual([])
  })
})

describe("bad input", () => {
  let threadId: string
  beforeAll(async () => {
    threadId = await newThread("bad input")
  })
  const messages = () => `/api/threads/${threadId}/messages`

  it("missing x-org-id → 400", async () => {
    expectError(
      await api(gateway.baseUrl, undefined).post("/api/threads", {}),
      400,
      "missing_org_id",
      /x-org-id/,
    )
    expectError(await api(gateway.baseUrl, undefined).get("/api/threads"), 400, "missing_org_id")
  })

  it("malformed x-org-id → 400", async () => {
    expectError(await api(gateway.baseUrl, "bad org id!").get("/api/threads"), 400, "invalid_org_id")
  })

  it("invalid JSON → 400", async () => {
    expectError(await client().post(messages(), "{not json"), 400, "invalid_request", /valid JSON/)
  })

  it("wrong content type → 415", async () => {
    const response = await client().post(messages(), "hello", { "content-type": "text/plain" })
    expectError(response, 415, "unsupported_media_type", /application\/json/)
  })

  it("missing content → 400 naming the field", async () => {
    const { content: _, ...withoutContent } = turn()
    expectError(
      await client().post(messages(), withoutContent),
      400,
      "invalid_request",
      /content: Missing key/,
    )
  })

  it("empty content → 400 naming the field", async () => {
    expectError(
      await client().post(messages(), turn("")),
      400,
      "invalid_request",
      /content: content must not be empty/,
    )
  })

  it("unknown role → 400 naming the field, and every other problem at once", async () => {
    const response = await client().post(messages(), { role: "bot", content: "" })
    expectError(response, 400, "invalid_request", /role: Expected "user"/)
    expect(response.json.error.message).toMatch(/content/)
    expect(response.json.error.message).toMatch(/provider: Missing key/)
  })

  it("sampling out of range → 400 naming each field", async () => {
    const response = await client().post(messages(), {
      ...turn("x"),
      top_p: 2,
      stop: ["a", "b", "c", "d", "e"],
    })
    expectError(response, 400, "invalid_request", /top_p/)
    expect(response.json.error.message).toMatch(/stop: at most 4 stop sequences/)
  })

  it("unknown provider → 400", async () => {
    expectError(
      await client().post(messages(), turn("x", { provider: "nope" })),
      400,
      "unknown_provider",
      /"nope"/,
    )
  })

  it("unknown model → 400", async () => {
    expectError(
      await client().post(messages(), turn("x", { model: "gpt-nope" })),
      400,
      "unknown_model",
      /gpt-nope/,
    )
  })

  it("a provider without an API key → 503 saying which variable to set", async () => {
    expectError(
      await client().post(messages(), turn("x", { provider: "anthropic", model: "claude" })),
      503,
      "provider_not_configured",
      /ANTHROPIC_API_KEY/,
    )
  })

  it("malformed thread id → 400", async () => {
    expectError(
      await client().post("/api/threads/not-a-uuid/messages", turn()),
      400,
      "invalid_request",
      /thread_id/,
    )
    expectError(await client().get("/api/threads/not-a-uuid"), 400, "invalid_request", /thread_id/)
  })

  it("unknown thread id → 404", async () => {
    const unknown = crypto.randomUUID()
    expectError(await client().post(`/api/threads/${unknown}/messages`, turn()), 404, "thread_not_found")
    expectError(await client().get(`/api/threads/${unknown}`), 404, "thread_not_found")
  })

  it("body over 1 MiB → 413, with a content-length and chunked", async () => {
    const big = JSON.stringify(turn("a".repeat(1024 * 1024 + 10)))
    expectError(await client().post(messages(), big), 413, "body_too_large")
    const chunked = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big))
        controller.close()
      },
    })
    const response = await fetch(`${gateway.baseUrl}${messages()}`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: chunked,
      duplex: "half",
    } as RequestInit)
    expect(response.status).toBe(413)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("body_too_large")
  })

  it("content over MAX_CONTENT_CHARS → 413 naming the limit", async () => {
    expectError(await client().post(messages(), turn("a".repeat(1001))), 413, "content_too_large", /1000/)
  })

  it("a bad limit on the list → 400", async () => {
    expectError(await client().get("/api/threads?limit=0"), 400, "invalid_request", /limit/)
  })

  it("unknown route → 404 JSON", async () => {
    expectError(await client().get("/api/nowhere"), 404, "not_found")
  })

  it("none of the bad requests stored anything", async () => {
    const thread = await client().get(`/api/threads/${threadId}`)
    expect(thread.json.messages).toEqual([])
  })
})

describe("system endpoints", () => {
  it("/health and /ready", async () => {
    const health = await client().get("/health")
    expect(health.json).toEqual({ status: "ok" })
    const ready = await client().get("/ready")
    expect(ready.status).toBe(200)
    expect(ready.json.status).toBe("ready")
    // Whether the store answers, never where it is or what its driver said.
    expect(ready.json.store).toBe("ok")
    expect(ready.json.providers).toContainEqual({ name: "mock", configured: true })
    expect(ready.json.providers).toContainEqual({ name: "openai", configured: false })
    expect(ready.json.pacer.find((p: { provider: string }) => p.provider === "mock")).toMatchObject({
      inFlight: 0,
      queued: 0,
      pausedUntil: null,
    })
  })

  it("/openapi.json describes the API and /docs serves a page", async () => {
    const doc = await client().get("/openapi.json")
    expect(doc.json.openapi).toMatch(/^3\./)
    expect(Object.keys(doc.json.paths)).toEqual(
      expect.arrayContaining([
        "/api/threads",
        "/api/threads/{thread_id}",
        "/api/threads/{thread_id}/messages",
      ]),
    )
    const docs = await fetch(`${gateway.baseUrl}/docs`)
    expect(docs.status).toBe(200)
    expect(docs.headers.get("content-type")).toMatch(/text\/html/)
  })
})
