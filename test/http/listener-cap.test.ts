import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  gateway = await startGateway({ MAX_LISTENERS_PER_GENERATION: "2", MOCK_TOKEN_INTERVAL_MS: "20" })
})
afterAll(() => gateway?.close())

const client = () => api(gateway.baseUrl, org)
const endless = { role: "user", content: "on and on", provider: "mock", model: "never-ending" }
const stream = (threadId: string) =>
  openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
    method: "POST",
    headers: { "x-org-id": org, "content-type": "application/json" },
    body: JSON.stringify(endless),
  })

describe("MAX_LISTENERS_PER_GENERATION", () => {
  it("refuses one stream more than a generation may feed with a 429 naming the limit; the others go on", async () => {
    const threadId = (await client().post("/api/threads", {})).json.thread_id as string
    const first = stream(threadId)
    await first.until((events) => events.some((e) => e.event === "delta"))
    const second = stream(threadId)
    await second.until((events) => events.some((e) => e.event === "delta"))
    expect(second.events.find((e) => e.event === "meta")?.data.coalesce).toBe("follower")

    // A third identical request would be a third listener.
    const third = await client().post(`/api/threads/${threadId}/messages/stream`, endless)
    expect(third.status).toBe(429)
    expect(third.json.error).toMatchObject({ code: "too_many_listeners", retryable: true })
    expect(third.json.error.message).toMatch(/MAX_LISTENERS_PER_GENERATION/)

    // So would a second viewer re-joining the first request while it still listens.
    const requestId = first.events.find((e) => e.event === "meta")?.data.request_id as string
    const viewer = await client().get(`/api/threads/${threadId}/stream/${requestId}`)
    expect(viewer.status).toBe(429)
    expect(viewer.json.error.code).toBe("too_many_listeners")

    // The two listeners were not disturbed; stopping the generation ends both.
    const before = first.events.length
    await first.until((events) => events.length > before + 2)
    const cancel = await client().post(`/api/threads/cancel/${requestId}?scope=generation`)
    expect(cancel.json).toEqual({ cancelled: true })
    await Promise.all([first.done, second.done])
    expect(first.events.at(-1)?.event).toBe("cancelled")
    expect(second.events.at(-1)?.event).toBe("cancelled")
  })
})
