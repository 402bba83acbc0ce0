import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

let gateway: RunningGateway

beforeAll(async () => {
  gateway = await startGateway({
    MOCK_CONCURRENCY: "1",
    MOCK_MAX_QUEUE: "2",
    MOCK_TTFT_MS: "1",
    MOCK_TOKENS: "3",
    MOCK_TOKEN_INTERVAL_MS: "1",
  })
})
afterAll(() => gateway?.close())

const turn = (content: string, model = "faststream-ttft") => ({
  role: "user",
  content,
  provider: "mock",
  model,
})

/** Once every slot and place came back, a new request runs (retried while the slots drain). */
const runsAgain = async (c: ReturnType<typeof api>, threadId: string) => {
  let after = await c.post(`/api/threads/${threadId}/messages`, turn("after"))
  for (let i = 0; i < 50 && after.status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    after = await c.post(`/api/threads/${threadId}/messages`, turn(`after ${i}`))
  }
  return after
}

describe("the pacer behind the API", () => {
  it("answers 429 with retry-after when the provider's queue is full, storing nothing", async () => {
    const org = `org-${crypto.randomUUID()}`
    const c = api(gateway.baseUrl, org)
    // Turns on one thread run one at a time: each request here has a thread of its own.
    const newThread = async () => (await c.post("/api/threads", {})).json.thread_id as string
    const threadId = await newThread()
    // One never-ending reply holds the only slot; two more wait; the next is refused.
    const holders = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const controller = new AbortController()
        const holderThread = await newThread()
        const done = fetch(`${gateway.baseUrl}/api/threads/${holderThread}/messages`, {
          method: "POST",
          headers: { "x-org-id": org, "content-type": "application/json", "x-dac-coalesce": "off" },
          body: JSON.stringify(turn(`hold ${i}`, "never-ending")),
          signal: controller.signal,
        }).catch(() => undefined)
        return { controller, done }
      }),
    )
    const mockPacer = async () =>
      (
        (await c.get("/ready")).json.pacer as Array<{ provider: string; inFlight: number; queued: number }>
      ).find((p) => p.provider === "mock")!
    for (let i = 0; i < 100; i++) {
      const pacer = await mockPacer()
      if (pacer.inFlight === 1 && pacer.queued === 2) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const refused = await c.post(`/api/threads/${threadId}/messages`, turn("one too many"), {
      "x-dac-coalesce": "off",
    })
    expect(refused.status).toBe(429)
    expect(refused.json.error.code).toBe("rate_limited")
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    const messages = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(messages).toEqual([])

    for (const holder of holders) holder.controller.abort()
    await Promise.all(holders.map((h) => h.done))
    // Every slot and place came back: a new request runs.
    const after = await runsAgain(c, threadId)
    expect(after.status).toBe(200)
    expect(after.json.metrics.queue_wait_ms).toBeGreaterThanOrEqual(0)
  })
})

describe("PACER_MAX_WAIT_MS", () => {
  let slow: RunningGateway
  beforeAll(async () => {
    slow = await startGateway({
      MOCK_CONCURRENCY: "1",
      PACER_MAX_WAIT_MS: "300",
      MOCK_TTFT_MS: "1",
      MOCK_TOKENS: "3",
      MOCK_TOKEN_INTERVAL_MS: "1",
    })
  })
  afterAll(() => slow?.close())

  it("a request waiting longer fails with 503 upstream_overloaded and leaves the queue; the slot is not leaked", async () => {
    const org = `org-${crypto.randomUUID()}`
    const c = api(slow.baseUrl, org)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const holder = new AbortController()
    const held = fetch(`${slow.baseUrl}/api/threads/${threadId}/messages`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify(turn("hold the slot", "never-ending")),
      signal: holder.signal,
    }).catch(() => undefined)
    const mockPacer = async () =>
      (
        (await c.get("/ready")).json.pacer as Array<{ provider: string; inFlight: number; queued: number }>
      ).find((p) => p.provider === "mock")!
    for (let i = 0; i < 100 && (await mockPacer()).inFlight === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }

    // On a thread of its own (turns on one thread run one at a time).
    const waitingThread = (await c.post("/api/threads", {})).json.thread_id
    const startedAt = performance.now()
    const waited = await c.post(`/api/threads/${waitingThread}/messages`, turn("waits too long"))
    expect(waited.status).toBe(503)
    expect(waited.json.error.code).toBe("upstream_overloaded")
    expect(waited.json.error.message).toContain("PACER_MAX_WAIT_MS")
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(290)
    expect(await mockPacer()).toMatchObject({ inFlight: 1, queued: 0 })
    const stored = (await c.get(`/api/threads/${waitingThread}`)).json.messages.at(-1)
    expect(stored).toMatchObject({ role: "assistant", status: "failed", error_code: "upstream_overloaded" })

    holder.abort()
    await held
    const after = await runsAgain(c, waitingThread)
    expect(after.status).toBe(200)
    expect(await mockPacer()).toMatchObject({ inFlight: 0, queued: 0 })
  })
})

describe("the pacer's fair share per org, over HTTP", () => {
  let fair: RunningGateway
  beforeAll(async () => {
    fair = await startGateway({
      MOCK_CONCURRENCY: "1",
      MOCK_MAX_QUEUE: "5",
      // Long enough that all six are queued before the first is done, on a loaded machine too.
      MOCK_TTFT_MS: "300",
      MOCK_TOKENS: "2",
      MOCK_TOKEN_INTERVAL_MS: "1",
    })
  })
  afterAll(() => fair?.close())

  it("CONCURRENCY=1, MAX_QUEUE=5: org A's six requests do not get org B's one refused; B is served among A's first", async () => {
    const orgA = `org-${crypto.randomUUID()}`
    const orgB = `org-${crypto.randomUUID()}`
    const a = api(fair.baseUrl, orgA)
    const b = api(fair.baseUrl, orgB)
    const threadB = (await b.post("/api/threads", {})).json.thread_id
    const finished: Array<string> = []
    const send = (c: ReturnType<typeof api>, threadId: string, label: string) =>
      c.post(`/api/threads/${threadId}/messages`, turn(label), { "x-dac-coalesce": "off" }).then((r) => {
        finished.push(label)
        return r
      })
    // A thread per request: turns on one thread run one at a time.
    const threadsA = await Promise.all(
      Array.from({ length: 7 }, async () => (await a.post("/api/threads", {})).json.thread_id as string),
    )
    const fromA = Array.from({ length: 6 }, (_, i) => send(a, threadsA[i]!, `a${i}`))
    const mockPacer = async () =>
      ((await a.get("/ready")).json.pacer as Array<{ provider: string; queued: number }>).find(
        (p) => p.provider === "mock",
      )!
    for (let i = 0; i < 200 && (await mockPacer()).queued < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    expect((await mockPacer()).queued).toBe(5)
    // A's seventh is over the queue; B's first is not.
    const aRefused = await a.post(`/api/threads/${threadsA[6]}/messages`, turn("a-extra"), {
      "x-dac-coalesce": "off",
    })
    expect(aRefused.status).toBe(429)
    expect(aRefused.json.error.code).toBe("rate_limited")
    const fromB = await send(b, threadB, "b")
    expect(fromB.status).toBe(200)
    for (const response of await Promise.all(fromA)) expect(response.status).toBe(200)
    // Round-robin by org: B finished before most of A's queued requests, not after all six.
    expect(finished.indexOf("b")).toBeLessThanOrEqual(2)
  })
})
