import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`
const tokens = 12

beforeAll(async () => {
  gateway = await startGateway({
    MOCK_TOKENS: String(tokens),
    // Long enough that a burst of identical requests all arrive while its reply runs (a loaded
    // machine takes a while to accept 500 connections).
    MOCK_TTFT_MS: "2000",
    MOCK_TOKEN_INTERVAL_MS: "5",
    COALESCE_ERROR_TTL_MS: "300",
    COALESCE_RESULT_TTL_MS: "5000",
    // A loaded machine takes seconds to take 500 connections: the late ones still find the turn.
    COALESCE_REPEAT_WINDOW_MS: "5000",
  })
})
afterAll(() => gateway?.close())

const client = () => api(gateway.baseUrl, org)
const newThread = async () => (await client().post("/api/threads", {})).json.thread_id as string
const turn = (content: string, model = "faststream-ttft") => ({
  role: "user",
  content,
  provider: "mock",
  model,
})
const messagesOf = async (threadId: string) =>
  (await client().get(`/api/threads/${threadId}`)).json.messages as Array<{
    role: string
    status: string
    message_id: string
  }>

describe("coalescing identical requests", () => {
  it("N identical concurrent requests → one upstream call, one persisted turn, the same reply for all", async () => {
    const threadId = await newThread()
    const n = 500
    const responses = await Promise.all(
      Array.from({ length: n }, () =>
        client().post(`/api/threads/${threadId}/messages`, turn("same question")),
      ),
    )
    expect(responses.every((r) => r.status === 200)).toBe(true)
    const roles = responses.map((r) => r.json.coalesce as string)
    expect(roles.filter((role) => role === "leader")).toHaveLength(1)
    expect(roles.filter((role) => role === "follower" || role === "cache_hit")).toHaveLength(n - 1)
    const assistantIds = new Set(responses.map((r) => r.json.assistant_message.message_id))
    const userIds = new Set(responses.map((r) => r.json.user_message.message_id))
    expect(assistantIds.size).toBe(1)
    expect(userIds.size).toBe(1)
    expect(new Set(responses.map((r) => r.json.assistant_message.content))).toEqual(
      new Set([mockReplyText(tokens)]),
    )
    expect(new Set(responses.map((r) => r.json.request_id)).size).toBe(n)
    const stored = await messagesOf(threadId)
    expect(stored.map((m) => m.role)).toEqual(["user", "assistant"])
  })

  it("a leader's failure is shared within the error TTL, then the next request leads again", async () => {
    const threadId = await newThread()
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        client().post(`/api/threads/${threadId}/messages`, turn("boom", "failing-midstream")),
      ),
    )
    expect(responses.every((r) => r.status === 502 && r.json.error.code === "upstream_stream_error")).toBe(
      true,
    )
    expect((await messagesOf(threadId)).map((m) => [m.role, m.status])).toEqual([
      ["user", "complete"],
      ["assistant", "failed"],
    ])
    const within = await client().post(`/api/threads/${threadId}/messages`, turn("boom", "failing-midstream"))
    expect(within.status).toBe(502)
    expect(await messagesOf(threadId)).toHaveLength(2)

    await new Promise((resolve) => setTimeout(resolve, 500))
    const after = await client().post(`/api/threads/${threadId}/messages`, turn("boom", "failing-midstream"))
    expect(after.status).toBe(502)
    expect(await messagesOf(threadId)).toHaveLength(4)
  })

  it('the same words sent again after the reply are a new turn (a repeated "continue" is not swallowed)', async () => {
    const threadId = await newThread()
    const first = await client().post(`/api/threads/${threadId}/messages`, turn("continue"))
    // Sent as the answer to the reply (parent_message_id): a new turn, even within the repeat window.
    const again = await client().post(`/api/threads/${threadId}/messages`, {
      ...turn("continue"),
      parent_message_id: first.json.assistant_message.message_id,
    })
    expect(first.json.coalesce).toBe("leader")
    expect(again.json.coalesce).toBe("leader")
    expect(again.json.assistant_message.message_id).not.toBe(first.json.assistant_message.message_id)
    expect(await messagesOf(threadId)).toHaveLength(4)
  })

  it("a late retry with its Idempotency-Key, within the result TTL, is a cache hit with the same turn", async () => {
    const threadId = await newThread()
    const key = { "idempotency-key": crypto.randomUUID() }
    const first = await client().post(`/api/threads/${threadId}/messages`, turn("double submit"), key)
    const again = await client().post(`/api/threads/${threadId}/messages`, turn("double submit"), key)
    expect(first.json.coalesce).toBe("leader")
    expect(again.json.coalesce).toBe("cache_hit")
    expect(again.json.assistant_message.message_id).toBe(first.json.assistant_message.message_id)
    expect(again.json.request_id).not.toBe(first.json.request_id)
    expect(await messagesOf(threadId)).toHaveLength(2)
  })

  it("Idempotency-Key: same key and body → the same turn; another body → 409", async () => {
    const threadId = await newThread()
    const key = { "idempotency-key": crypto.randomUUID(), "x-dac-coalesce": "off" }
    const first = await client().post(`/api/threads/${threadId}/messages`, turn("pay once"), key)
    const retry = await client().post(`/api/threads/${threadId}/messages`, turn("pay once"), key)
    expect(retry.json.assistant_message.message_id).toBe(first.json.assistant_message.message_id)
    const conflict = await client().post(`/api/threads/${threadId}/messages`, turn("pay twice"), key)
    expect(conflict.status).toBe(409)
    expect(conflict.json.error.code).toBe("idempotency_conflict")
    expect(await messagesOf(threadId)).toHaveLength(2)
  })

  it("the opt-out header bypasses coalescing", async () => {
    const threadId = await newThread()
    const optOut = { "x-dac-coalesce": "off" }
    const [a, b] = await Promise.all([
      client().post(`/api/threads/${threadId}/messages`, turn("alone"), optOut),
      client().post(`/api/threads/${threadId}/messages`, turn("alone"), optOut),
    ])
    expect([a!.json.coalesce, b!.json.coalesce]).toEqual(["bypass", "bypass"])
    expect(a!.json.assistant_message.message_id).not.toBe(b!.json.assistant_message.message_id)
    expect(await messagesOf(threadId)).toHaveLength(4)
  })

  it("identical concurrent streams share one generation", async () => {
    const threadId = await newThread()
    const headers = { "x-org-id": org, "content-type": "application/json" }
    const streams = Array.from({ length: 10 }, () =>
      openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
        method: "POST",
        headers,
        body: JSON.stringify(turn("stream together")),
      }),
    )
    await Promise.all(streams.map((s) => s.done))
    const metas = streams.map((s) => s.events[1]!.data)
    expect(new Set(metas.map((m) => m.generation_id)).size).toBe(1)
    expect(metas.filter((m) => m.coalesce === "leader")).toHaveLength(1)
    for (const s of streams) expect(s.text()).toBe(mockReplyText(tokens))
    expect(await messagesOf(threadId)).toHaveLength(2)
  })
})
