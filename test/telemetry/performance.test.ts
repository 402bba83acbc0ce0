import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RequestLogEntry } from "../../src/store/request-log-repo.ts"
import { percentiles } from "../../src/telemetry/percentiles.ts"
import { summarize } from "../../src/telemetry/performance.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

const entry = (overrides: Partial<RequestLogEntry>): RequestLogEntry => ({
  request_id: crypto.randomUUID(),
  org_id: "o",
  thread_id: null,
  provider: "mock",
  model: "m",
  coalesce: "leader",
  status: "ok",
  error_code: null,
  queue_wait_ms: 0,
  ttft_ms: 10,
  latency_ms: 100,
  input_tokens: null,
  output_tokens: null,
  ...overrides,
})

describe("percentiles", () => {
  it("are nearest-rank over known inputs", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i)
    expect(percentiles(values)).toEqual({ p50: 50, p95: 95, p99: 99 })
    expect(percentiles([7])).toEqual({ p50: 7, p95: 7, p99: 7 })
    expect(percentiles([])).toEqual({ p50: null, p95: null, p99: null })
    expect(percentiles([1, 2, 3, 4]).p50).toBe(2)
  })

  it("summarise roles, timings and the error rate, skipping missing timings", () => {
    const summary = summarize([
      entry({ ttft_ms: 10, latency_ms: 100 }),
      entry({ coalesce: "follower", ttft_ms: 20, latency_ms: 200 }),
      entry({ coalesce: "cache_hit", ttft_ms: null, latency_ms: 5 }),
      entry({ status: "error", error_code: "upstream_error", ttft_ms: null, latency_ms: 50 }),
    ])
    expect(summary.count).toBe(4)
    expect(summary.coalesce).toEqual({ leaders: 2, followers: 1, cache_hits: 1, bypass: 0 })
    expect(summary.error_rate).toBe(0.25)
    expect(summary.ttft_ms).toEqual({ p50: 10, p95: 20, p99: 20 })
    expect(summary.latency_ms.p50).toBe(50)
  })
})

describe("GET /api/metrics/performance", () => {
  let gateway: RunningGateway
  beforeAll(async () => {
    gateway = await startGateway({ MOCK_TOKENS: "4", MOCK_TTFT_MS: "5", MOCK_TOKEN_INTERVAL_MS: "1" })
  })
  afterAll(() => gateway?.close())

  it("summarises the org's own requests, with a provider filter", async () => {
    const org = `org-${crypto.randomUUID()}`
    const c = api(gateway.baseUrl, org)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const turn = (content: string, model = "faststream-ttft") => ({
      role: "user",
      content,
      provider: "mock",
      model,
    })
    await Promise.all([0, 1, 2].map(() => c.post(`/api/threads/${threadId}/messages`, turn("same"))))
    await c.post(`/api/threads/${threadId}/messages`, turn("fails", "failing-midstream"))
    await api(gateway.baseUrl, "another-org").post("/api/threads", {})

    const summary = (await c.get("/api/metrics/performance?last_n=100")).json
    expect(summary.count).toBe(4)
    expect(summary.coalesce.leaders).toBe(2)
    expect(summary.coalesce.followers + summary.coalesce.cache_hits).toBe(2)
    expect(summary.error_rate).toBe(0.25)
    expect(summary.ttft_ms.p50).toBeGreaterThan(0)
    expect(summary.latency_ms.p99).toBeGreaterThanOrEqual(summary.latency_ms.p50)
    expect(summary.queue_wait_ms.p95).toBeGreaterThanOrEqual(0)

    expect((await c.get("/api/metrics/performance?last_n=2")).json.count).toBe(2)
    expect((await c.get("/api/metrics/performance?provider=openai")).json.count).toBe(0)
    const other = (await api(gateway.baseUrl, `org-${crypto.randomUUID()}`).get("/api/metrics/performance"))
      .json
    expect(other.count).toBe(0)
  })

  it("rejects a bad last_n with a 400 naming it", async () => {
    const c = api(gateway.baseUrl, "org-x")
    for (const bad of ["0", "-1", "abc", "10001", "1.5"]) {
      const response = await c.get(`/api/metrics/performance?last_n=${bad}`)
      expect(response.status).toBe(400)
      expect(response.json.error.message).toMatch(/last_n/)
    }
  })
})
