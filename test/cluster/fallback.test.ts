import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../scripts/free-port.ts"
import { withReplicaLabel } from "../../src/telemetry/metrics.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

/**
 * REDIS_URL set but nothing listening there: the replica starts anyway, serves on its share of the
 * limits and says so (needs no Redis at all, so it always runs).
 */

let gateway: RunningGateway
beforeAll(async () => {
  gateway = await startGateway({
    REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    REPLICA_ID: "lonely",
    REPLICA_COUNT: "4",
    MOCK_RPS: "400",
    MOCK_CONCURRENCY: "8",
  })
})
afterAll(() => gateway?.close())

describe("REDIS_URL with Redis unreachable", () => {
  it("serves requests, on 1/REPLICA_COUNT of each limit, and says so in /ready and /metrics", async () => {
    const c = api(gateway.baseUrl, `org-${crypto.randomUUID()}`)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const sent = await c.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "hello",
      provider: "mock",
      model: "faststream-ttft",
    })
    expect(sent.status).toBe(200)
    const ready = await c.get("/ready")
    expect(ready.status).toBe(200)
    expect(ready.json).toMatchObject({
      status: "ready",
      replica: "lonely",
      redis: { state: "down" },
      shared: { replicas: 4, limits: "fallback" },
    })
    const mock = ready.json.shared.pacer.find((p: { provider: string }) => p.provider === "mock")
    expect(mock.mode).toBe("fallback")
    // The pacer's own view: the share of MOCK_CONCURRENCY=8 over 4 replicas.
    expect(ready.json.pacer.find((p: { provider: string }) => p.provider === "mock").concurrencyLimit).toBe(2)
    const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text()
    expect(metrics).toContain('dac_redis_up{replica="lonely"} 0')
    expect(metrics).toContain('dac_limits_fallback{replica="lonely"} 1')
  })
})

describe("withReplicaLabel", () => {
  it("adds replica to every sample, with or without labels, and leaves comments alone", () => {
    const text = [
      "# HELP a_total A",
      "# TYPE a_total counter",
      'a_total{x="1 2"} 3',
      "b 4",
      "c{} 5",
      "",
    ].join("\n")
    expect(withReplicaLabel(text, 'r"1')).toBe(
      [
        "# HELP a_total A",
        "# TYPE a_total counter",
        'a_total{replica="r\\"1",x="1 2"} 3',
        'b{replica="r\\"1"} 4',
        'c{replica="r\\"1"} 5',
        "",
      ].join("\n"),
    )
  })
})
