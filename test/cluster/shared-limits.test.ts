import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Replica, startCluster, stopCluster } from "../../scripts/replicas.ts"
import {
  clusterDatabase,
  clusterSkipReason,
  dropPrefix,
  perSecond,
  runPrefix,
  sleep,
  upstreamProcess,
} from "../support/cluster.ts"

/**
 * Three replica processes on one Redis and one PostgreSQL: the provider's rate and concurrency
 * limits and the per-key limits hold for all of them together, not per replica.
 */

const skip = await clusterSkipReason()
if (skip !== undefined) console.warn(`skipping the multi-replica tests (test/cluster): ${skip}`)

const adminKey = `admin-${crypto.randomUUID()}`
const rps = 50
const concurrency = 6
let upstream: Awaited<ReturnType<typeof upstreamProcess>>
let replicas: ReadonlyArray<Replica> = []
let database: ReturnType<typeof clusterDatabase> | undefined
const prefix = runPrefix("limits")

/** A `/v1` streamed completion, read to its end; the status. */
const complete = async (replica: Replica, key: string, model: string, content: string) => {
  try {
    const response = await fetch(`${replica.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content }] }),
    })
    const text = await response.text()
    return { status: response.status, text }
  } catch (error) {
    return { status: 0, text: String(error) }
  }
}

const issue = async (limits: Record<string, number>) => {
  const response = await fetch(`${replicas[0]!.url}/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ org_id: `org-${crypto.randomUUID()}`, limits }),
  })
  expect(response.status).toBe(201)
  const { key } = (await response.json()) as { key: string }
  // Every replica re-reads the keys every 0.5 s.
  await sleep(1_200)
  return key
}

describe.skipIf(skip !== undefined)("three replicas share the pacer and the key limits (Redis)", () => {
  beforeAll(async () => {
    // OpenAI answers in 40 ms (the rate binds); OpenRouter in 150 ms (its concurrency binds). In
    // a process of its own: its arrival times must not stall with this process's load.
    upstream = await upstreamProcess({
      openai: { transcript: "openai-chat-stream", headersDelayMs: 40 },
      openrouter: { transcript: "openrouter-stream", headersDelayMs: 150 },
    })
    database = clusterDatabase()
    replicas = await startCluster({
      replicas: 3,
      env: {
        ...upstream.env,
        DATABASE_URL: database.url,
        REDIS_URL: "redis://127.0.0.1:6379",
        REDIS_KEY_PREFIX: prefix,
        AUTH_MODE: "keys",
        ADMIN_API_KEY: adminKey,
        LOG_LEVEL: "Warn",
        OPENAI_RPS: String(rps),
        OPENAI_BURST: "5",
        OPENROUTER_RPS: "10000",
        OPENROUTER_BURST: "10000",
        OPENROUTER_CONCURRENCY: String(concurrency),
        MOCK_TTFT_MS: "400",
      },
    })
  }, 90_000)
  afterAll(async () => {
    await stopCluster(replicas)
    await upstream?.close()
    database?.drop()
    await dropPrefix("redis://127.0.0.1:6379", prefix)
  })

  it(`the upstream sees ${rps} requests/s ± 5 % from three loaded replicas, and never more than ${concurrency} calls at once`, async () => {
    const key = await issue({})
    const runMs = 8_000
    const end = Date.now() + runMs
    const statuses: Array<number> = []
    let n = 0
    // 15 callers per replica per provider, each sending again as soon as it has its answer.
    const loop = async (replica: Replica, model: string) => {
      while (Date.now() < end) {
        const { status } = await complete(replica, key, model, `load ${n++}`)
        statuses.push(status)
      }
    }
    await Promise.all(
      replicas.flatMap((replica) => [
        ...Array.from({ length: 15 }, () => loop(replica, "openai/gpt-4o-mini")),
        ...Array.from({ length: 15 }, () => loop(replica, "openrouter/openai/gpt-4o-mini")),
      ]),
    )
    const stats = await upstream.stats()
    const arrivals = stats.arrivals.openai!
    const maxConcurrency = stats.maxConcurrency.openrouter!
    // From 1.5 s in (the BURST of 5 is spent, every caller is under way) to the end of the load.
    const from = arrivals[0]! + 1_500
    const seconds = perSecond(arrivals, from, end)
    const counted = seconds.reduce((a, b) => a + b, 0)
    const rate = counted / seconds.length
    console.log(
      `shared pacer, 3 replicas: upstream ${rate.toFixed(2)} req/s over ${seconds.length} s (per second: ${seconds.join(", ")}); ` +
        `openrouter max concurrency ${maxConcurrency} (limit ${concurrency}); ${statuses.length} requests`,
    )
    expect(statuses.every((status) => status === 200)).toBe(true)
    expect(rate).toBeGreaterThanOrEqual(rps * 0.95)
    expect(rate).toBeLessThanOrEqual(rps * 1.05)
    expect(maxConcurrency).toBeLessThanOrEqual(concurrency)
    // The limit was what bound it: 45 callers on 150 ms answers would take far more.
    expect(maxConcurrency).toBeGreaterThanOrEqual(concurrency - 1)
  }, 30_000)

  it("requests_per_minute holds for the three replicas together", async () => {
    const key = await issue({ requests_per_minute: 20 })
    const results = await Promise.all(
      Array.from({ length: 45 }, (_, i) => complete(replicas[i % 3]!, key, "openai/gpt-4o-mini", `rpm ${i}`)),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(20)
    expect(statuses.filter((s) => s === 429)).toHaveLength(25)
    expect(results.find((r) => r.status === 429)!.text).toContain("key_rate_limited")
  })

  it("concurrent_requests holds for the three replicas together", async () => {
    const key = await issue({ concurrent_requests: 3 })
    // Mock answers take 400 ms: 12 requests at once, 3 get in, wherever they land.
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => complete(replicas[i % 3]!, key, "mock/faststream-ttft", `c ${i}`)),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(3)
    expect(statuses.filter((s) => s === 429)).toHaveLength(9)
    expect(results.find((r) => r.status === 429)!.text).toContain("key_concurrency_limited")
    // The slots came back: one more goes through on each replica.
    for (const replica of replicas)
      expect((await complete(replica, key, "mock/faststream-ttft", "after")).status).toBe(200)
  })

  it("tokens_per_day holds for the three replicas together", async () => {
    const key = await issue({ tokens_per_day: 1 })
    expect((await complete(replicas[0]!, key, "mock/faststream-ttft", "spend")).status).toBe(200)
    await sleep(300)
    for (const replica of replicas.slice(1)) {
      const refused = await complete(replica, key, "mock/faststream-ttft", "more")
      expect(refused.status).toBe(429)
      expect(refused.text).toContain("key_budget_exhausted")
    }
  })

  it("/ready shows the replica, Redis and the shared budget; /metrics carries the replica label", async () => {
    for (const replica of replicas) {
      const ready = (await (await fetch(`${replica.url}/ready`)).json()) as Record<string, never>
      expect(ready).toMatchObject({ status: "ready", replica: replica.id, redis: { state: "up" } })
      expect(ready).toHaveProperty("shared.limits", "shared")
      const metrics = await (await fetch(`${replica.url}/metrics`)).text()
      expect(metrics).toContain(`dac_redis_up{replica="${replica.id}"} 1`)
      expect(metrics).toContain(`dac_limits_fallback{replica="${replica.id}"} 0`)
    }
  })
})
