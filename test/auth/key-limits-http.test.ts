import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

/** Per-key limits as a client with a key meets them: 429, `retry-after`, a code naming the limit. */

const adminKey = `admin-${crypto.randomUUID()}`
let gateway: RunningGateway

beforeAll(async () => {
  gateway = await startGateway({ AUTH_MODE: "keys", ADMIN_API_KEY: adminKey, MOCK_TOKEN_INTERVAL_MS: "5" })
})
afterAll(() => gateway?.close())

const issue = async (limits: Record<string, number>) => {
  const admin = api(gateway.baseUrl, undefined)
  const created = await admin.post(
    "/admin/keys",
    { org_id: `org-${crypto.randomUUID()}`, limits },
    { authorization: `Bearer ${adminKey}` },
  )
  expect(created.status).toBe(201)
  return created.json.key as string
}
const withKey = (key: string) => ({ authorization: `Bearer ${key}` })
const turn = { role: "user", provider: "mock", model: "faststream-ttft" }

describe("per-key limits over HTTP", () => {
  it("requests_per_minute: the next request gets 429 key_rate_limited with retry-after, on /api and on /v1", async () => {
    const key = await issue({ requests_per_minute: 2 })
    const client = api(gateway.baseUrl, undefined)
    const threadId = (await client.post("/api/threads", {}, withKey(key))).json.thread_id
    for (const content of ["one", "two"]) {
      const sent = await client.post(`/api/threads/${threadId}/messages`, { ...turn, content }, withKey(key))
      expect(sent.status).toBe(200)
    }
    const third = await client.post(
      `/api/threads/${threadId}/messages`,
      { ...turn, content: "3" },
      withKey(key),
    )
    expect(third.status).toBe(429)
    expect(third.json.error).toMatchObject({ code: "key_rate_limited", retryable: true })
    expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0)
    // OpenAI's shape on /v1, so the SDKs raise RateLimitError.
    const v1 = await client.post(
      "/v1/chat/completions",
      { model: "mock/faststream-ttft", messages: [{ role: "user", content: "hi" }] },
      withKey(key),
    )
    expect(v1.status).toBe(429)
    expect(v1.json.error).toMatchObject({ code: "key_rate_limited", type: "rate_limit_error" })
    expect(Number(v1.headers.get("retry-after"))).toBeGreaterThan(0)
  })

  it("concurrent_requests: a second request while a stream is open gets 429 key_concurrency_limited; after it ends, one goes through", async () => {
    const key = await issue({ concurrent_requests: 1 })
    const client = api(gateway.baseUrl, undefined)
    const threadId = (await client.post("/api/threads", {}, withKey(key))).json.thread_id
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { ...withKey(key), "content-type": "application/json" },
      body: JSON.stringify({ ...turn, model: "never-ending", content: "long" }),
    })
    await stream.until((events) => events.some((e) => e.event === "delta"))
    const second = await client.post(
      `/api/threads/${threadId}/messages`,
      { ...turn, content: "b" },
      withKey(key),
    )
    expect(second.status).toBe(429)
    expect(second.json.error.code).toBe("key_concurrency_limited")
    stream.abort()
    await stream.done
    // The slot comes back when the stream closes.
    await expect
      .poll(
        async () =>
          (await client.post(`/api/threads/${threadId}/messages`, { ...turn, content: "c" }, withKey(key)))
            .status,
        { timeout: 5_000, interval: 100 },
      )
      .toBe(200)
  })
})
