import { Context, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RequestLogRepo } from "../../src/store/request-log-repo.ts"
import { RequestLog } from "../../src/telemetry/request-log.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

let gateway: RunningGateway
beforeAll(async () => {
  gateway = await startGateway({
    MOCK_TOKENS: "3",
    MOCK_TTFT_MS: "20",
    MOCK_TOKEN_INTERVAL_MS: "1",
    MOCK_CONCURRENCY: "1",
    MOCK_MAX_QUEUE: "0",
  })
})
afterAll(() => gateway?.close())

describe("the request log", () => {
  it("records every request once: leader, follower, cache hit, bypass, rejected, cancelled, failed", async () => {
    const org = `org-${crypto.randomUUID()}`
    const c = api(gateway.baseUrl, org)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const turn = (content: string, model = "faststream-ttft") => ({
      role: "user",
      content,
      provider: "mock",
      model,
    })
    const ids: Array<string> = []

    // Leader and follower (the only slot is free, so they run; the follower shares it).
    const [leader, follower] = await Promise.all([
      c.post(`/api/threads/${threadId}/messages`, turn("shared")),
      c.post(`/api/threads/${threadId}/messages`, turn("shared")),
    ])
    ids.push(leader.json.request_id, follower.json.request_id)
    // A late retry of one send (its Idempotency-Key) finds the finished turn.
    const once = { "idempotency-key": crypto.randomUUID() }
    const original = await c.post(`/api/threads/${threadId}/messages`, turn("once"), once)
    ids.push(original.json.request_id)
    const hit = await c.post(`/api/threads/${threadId}/messages`, turn("once"), once)
    expect(hit.json.coalesce).toBe("cache_hit")
    ids.push(hit.json.request_id)
    const bypass = await c.post(`/api/threads/${threadId}/messages`, turn("alone"), {
      "x-dac-coalesce": "off",
    })
    expect(bypass.json.coalesce).toBe("bypass")
    ids.push(bypass.json.request_id)
    const failed = await c.post(`/api/threads/${threadId}/messages`, turn("boom", "failing-midstream"))
    expect(failed.status).toBe(502)

    // One never-ending stream holds the only slot; with no queue, the next request is rejected.
    const holder = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify(turn("forever", "never-ending")),
    })
    await holder.until((events) => events.some((e) => e.event === "delta"))
    // On another thread (on this one it would wait for the holder's turn to end).
    const otherThread = (await c.post("/api/threads", {})).json.thread_id
    const rejected = await c.post(`/api/threads/${otherThread}/messages`, turn("no room"), {
      "x-dac-coalesce": "off",
    })
    expect(rejected.status).toBe(429)
    const holderId = holder.events[1]!.data.request_id as string
    await c.post(`/api/threads/cancel/${holderId}`)
    await holder.done
    await new Promise((resolve) => setTimeout(resolve, 50))

    const log = Context.get(gateway.context as Context.Context<RequestLog>, RequestLog)
    const entries = log.lastN(100, (entry) => entry.org_id === org)
    expect(entries).toHaveLength(8)
    expect(new Set(entries.map((e) => e.request_id)).size).toBe(8)
    for (const id of ids) expect(entries.filter((e) => e.request_id === id)).toHaveLength(1)
    expect(entries.map((e) => `${e.coalesce}/${e.status}`).sort()).toEqual(
      [
        "leader/ok",
        "follower/ok",
        "leader/ok",
        "cache_hit/ok",
        "bypass/ok",
        "leader/error",
        "leader/cancelled",
        "bypass/rejected",
      ].sort(),
    )
    const failure = entries.find((e) => e.status === "error")
    expect(failure?.error_code).toBe("upstream_stream_error")

    // The rows reach the database in batches.
    await Effect.runPromise(log.flush)
    const repo = Context.get(gateway.context as Context.Context<RequestLogRepo>, RequestLogRepo)
    const stored = (await Effect.runPromise(repo.recent(1000))).filter((row) => row.org_id === org)
    expect(stored.map((row) => row.request_id).sort()).toEqual(entries.map((e) => e.request_id).sort())
  })
})
