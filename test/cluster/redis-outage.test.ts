import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Replica, startCluster, stopCluster } from "../../scripts/replicas.ts"
import {
  clusterDatabase,
  clusterSkipReason,
  ownRedis,
  perSecond,
  runPrefix,
  sleep,
} from "../support/cluster.ts"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"

/**
 * The outage policy (README, "Several replicas"): Redis gone, each replica keeps 1/REPLICA_COUNT of
 * every limit and says so; Redis back, the limits are shared again without a restart. And a replica
 * killed outright gives its slots back within SHARED_LEASE_MS. On a redis-server of the test's own.
 */

const skip = await clusterSkipReason()
if (skip !== undefined) console.warn(`skipping the Redis outage tests (test/cluster): ${skip}`)

const adminKey = `admin-${crypto.randomUUID()}`
const rps = 30
const leaseMs = 1_500
let upstream: FakeUpstream
let redis: Awaited<ReturnType<typeof ownRedis>>
let replicas: ReadonlyArray<Replica> = []
let database: ReturnType<typeof clusterDatabase> | undefined
let key = ""
let rpmKey = ""

const complete = async (replica: Replica, model: string, content: string, withKey = key) => {
  try {
    const response = await fetch(`${replica.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${withKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content }] }),
    })
    return { status: response.status, text: await response.text() }
  } catch (error) {
    return { status: 0, text: String(error) }
  }
}

const ready = async (replica: Replica) =>
  (await (await fetch(`${replica.url}/ready`)).json()) as {
    redis: { state: string }
    shared: { limits: string }
  }

const allReady = async (state: "up" | "down", timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    const states = await Promise.all(replicas.map(async (replica) => (await ready(replica)).redis.state))
    if (states.every((s) => s === state)) return performance.now()
    await sleep(50)
  }
  throw new Error(`replicas did not all see Redis ${state} within ${timeoutMs} ms`)
}

const rateOf = (arrivals: ReadonlyArray<number>, from: number, to: number) =>
  arrivals.filter((t) => t >= from && t < to).length / ((to - from) / 1000)

describe.skipIf(skip !== undefined)("Redis outage and a killed replica", () => {
  beforeAll(async () => {
    upstream = await startFakeUpstream()
    upstream.on("openai", { transcript: "openai-chat-stream", headersDelayMs: 40 })
    // OpenRouter: a request saying "hold" is never answered (it keeps its slot until its replica dies).
    upstream.on("openrouter", (request) =>
      JSON.stringify(request.body).includes("hold")
        ? { transcript: "openrouter-stream", hangBeforeHeaders: true }
        : { transcript: "openrouter-stream" },
    )
    redis = await ownRedis()
    database = clusterDatabase()
    replicas = await startCluster({
      replicas: 3,
      env: {
        ...upstream.env(),
        DATABASE_URL: database.url,
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: runPrefix("outage"),
        SHARED_LEASE_MS: String(leaseMs),
        AUTH_MODE: "keys",
        ADMIN_API_KEY: adminKey,
        LOG_LEVEL: "Warn",
        SHUTDOWN_GRACE_MS: "200",
        OPENAI_RPS: String(rps),
        OPENAI_BURST: "3",
        OPENROUTER_CONCURRENCY: "2",
      },
    })
    const issued = await fetch(`${replicas[0]!.url}/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ org_id: "org-outage", limits: {} }),
    })
    key = ((await issued.json()) as { key: string }).key
    const limited = await fetch(`${replicas[0]!.url}/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ org_id: "org-outage-rpm", limits: { requests_per_minute: 9 } }),
    })
    rpmKey = ((await limited.json()) as { key: string }).key
    await sleep(1_200)
  }, 90_000)
  afterAll(async () => {
    await stopCluster(replicas)
    await upstream?.close()
    await redis?.kill()
    database?.drop()
  })

  it(`Redis killed under load: no 5xx, each replica paces at ${rps}/3 while it is gone, shared again once it is back`, async () => {
    const statuses: Array<number> = []
    let stop = false
    let n = 0
    const loop = async (replica: Replica) => {
      while (!stop) {
        const { status, text } = await complete(replica, "openai/gpt-4o-mini", `load ${n++}`)
        statuses.push(status)
        if (status >= 500 || status === 0) console.warn(`status ${status}: ${text.slice(0, 200)}`)
      }
    }
    const load = Promise.all(replicas.flatMap((replica) => Array.from({ length: 12 }, () => loop(replica))))
    await sleep(2_500)
    const killedAt = performance.now()
    await redis.kill()
    await allReady("down", 3_000)
    const metrics = await (await fetch(`${replicas[1]!.url}/metrics`)).text()
    expect(metrics).toContain(`dac_limits_fallback{replica="r2"} 1`)
    expect((await ready(replicas[0]!)).shared.limits).toBe("fallback")
    // requests_per_minute=9 while Redis is gone: 9 / 3 replicas = 3 each, 9 in all.
    const rpm = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        complete(replicas[i % 3]!, "mock/faststream-ttft", `rpm ${i}`, rpmKey),
      ),
    )
    const rpmAdmitted = rpm.filter((r) => r.status === 200).length
    expect(rpm.filter((r) => r.status !== 200 && r.status !== 429)).toEqual([])
    await sleep(2_000)
    const restartedAt = performance.now()
    await redis.start()
    const recoveredAt = await allReady("up", 5_000)
    await sleep(3_000)
    stop = true
    await load
    const endedAt = performance.now()

    const arrivals = upstream.calls("openai").map((call) => call.receivedAt)
    const before = rateOf(arrivals, arrivals[0]! + 500, killedAt)
    const during = rateOf(arrivals, killedAt + 500, restartedAt)
    const after = rateOf(arrivals, recoveredAt + 500, endedAt)
    console.log(
      `Redis outage: upstream ${before.toFixed(1)} req/s shared, ${during.toFixed(1)} req/s in fallback, ` +
        `${after.toFixed(1)} req/s shared again (limit ${rps}); recovery seen ${Math.round(recoveredAt - restartedAt)} ms after the restart; ` +
        `per second: ${perSecond(arrivals, arrivals[0]!, endedAt).join(", ")}; ${statuses.length} requests; ` +
        `a key's requests_per_minute=9 in fallback admitted ${rpmAdmitted} of 30`,
    )
    expect(rpmAdmitted).toBe(9)
    expect(statuses.filter((s) => s >= 500 || s === 0)).toEqual([])
    expect(statuses.every((s) => s === 200)).toBe(true)
    // Short windows: a second's rounding is a few requests, hence 10 %.
    for (const rate of [before, during, after]) {
      expect(rate).toBeLessThanOrEqual(rps * 1.1)
      expect(rate).toBeGreaterThanOrEqual(rps * 0.8)
    }
  }, 40_000)

  it(`a replica killed with SIGKILL gives its slots back within SHARED_LEASE_MS (${leaseMs} ms)`, async () => {
    await allReady("up", 5_000)
    const [a, b] = replicas
    // A takes both OpenRouter slots with calls that never end.
    const held = [complete(a!, "openrouter/x", "hold 1"), complete(a!, "openrouter/x", "hold 2")]
    for (let i = 0; i < 100 && upstream.concurrency("openrouter").now < 2; i++) await sleep(20)
    expect(upstream.concurrency("openrouter").now).toBe(2)
    const killedAt = performance.now()
    a!.process.kill("SIGKILL")
    await Promise.all(held)
    // B's call waits for a slot the dead replica can no longer give back: its lease lapses.
    const answered = await complete(b!, "openrouter/x", "after the kill")
    const waited = performance.now() - killedAt
    console.log(`killed replica: its slots came back after ${Math.round(waited)} ms (lease ${leaseMs} ms)`)
    expect(answered.status).toBe(200)
    expect(waited).toBeLessThan(leaseMs + 1_000)
  }, 20_000)
})
