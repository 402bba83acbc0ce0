import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Replica, startCluster, stopCluster } from "../../scripts/replicas.ts"
import { mockReplyText } from "../../src/providers/mock.ts"
import { clusterDatabase, clusterSkipReason, ownRedis, runPrefix, sleep } from "../support/cluster.ts"
import { openStream, type ParsedEvent } from "../support/sse-client.ts"

/**
 * A reply relayed to another replica while Redis restarts (README, "Several replicas": the outage
 * policy): its listener there ends retryable or goes on, and a reconnect gets the rest, with no
 * gap, no duplicate and no 5xx. On a redis-server of the test's own.
 */

const skip = await clusterSkipReason()
if (skip !== undefined) console.warn(`skipping the relay outage test (test/cluster): ${skip}`)

const tokens = 80
let redis: Awaited<ReturnType<typeof ownRedis>>
let replicas: ReadonlyArray<Replica> = []
let database: ReturnType<typeof clusterDatabase> | undefined
const headers = { "x-org-id": `org-${crypto.randomUUID()}`, "content-type": "application/json" }
const terminal = new Set(["done", "error", "cancelled"])
const ended = (events: ReadonlyArray<ParsedEvent>) => events.some((e) => terminal.has(e.event))
const deltaCount = (events: ReadonlyArray<ParsedEvent>) => events.filter((e) => e.event === "delta").length

describe.skipIf(skip !== undefined)("a relayed reply while Redis restarts", () => {
  beforeAll(async () => {
    redis = await ownRedis()
    database = clusterDatabase()
    replicas = await startCluster({
      replicas: 2,
      env: {
        DATABASE_URL: database.url,
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: runPrefix("relay-outage"),
        SHARED_LEASE_MS: "1000",
        AUTH_MODE: "header",
        LOG_LEVEL: "Error",
        MOCK_TOKENS: String(tokens),
        MOCK_TOKEN_INTERVAL_MS: "50",
      },
    })
  }, 90_000)
  afterAll(async () => {
    await stopCluster(replicas)
    await redis?.kill()
    database?.drop()
  })

  it("the listener on B resumes after the restart: the whole text once, each id once, no 5xx", async () => {
    const [a, b] = [replicas[0]!, replicas[1]!]
    const thread = (await (
      await fetch(`${a.url}/api/threads`, { method: "POST", headers, body: "{}" })
    ).json()) as {
      thread_id: string
    }
    const started = openStream(`${a.url}/api/threads/${thread.thread_id}/messages/stream`, {
      method: "POST",
      headers: { ...headers, "x-dac-on-disconnect": "hold" },
      body: JSON.stringify({
        role: "user",
        content: "through an outage",
        provider: "mock",
        model: "faststream-ttft",
      }),
    })
    await started.until((events) => deltaCount(events) >= 5)
    started.abort()
    const requestId = started.events.find((e) => e.event === "meta")!.data.request_id as string
    const seen: Array<ParsedEvent> = started.events.filter((e) => e.id >= 2)
    const statuses: Array<number> = []
    const follow = async (replica: Replica, untilOutage: boolean) => {
      const stream = openStream(`${replica.url}/api/threads/${thread.thread_id}/stream/${requestId}`, {
        headers: { ...headers, "last-event-id": String(seen.at(-1)!.id) },
      })
      if (untilOutage) {
        await stream.until((events) => deltaCount(events) >= 5)
        await redis.kill()
        await sleep(500)
        await redis.start()
      }
      await stream.done
      statuses.push(stream.status)
      seen.push(...stream.events)
      return stream.events.at(-1)
    }
    let last = await follow(b, true)
    // Retryable (frames written while Redis was gone did not reach B): reconnect, as a client does.
    let reconnects = 0
    for (; reconnects < 5 && last?.event === "error" && last.data.retryable === true; reconnects++) {
      seen.pop()
      last = await follow(b, false)
    }
    console.log(`a reply relayed across a Redis restart: ${reconnects} reconnect(s) to finish it`)
    expect(statuses.every((status) => status === 200)).toBe(true)
    expect(last?.event).toBe("done")
    const ids = seen.map((e) => e.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids.at(-1)! - ids[0]! + 1).toBe(ids.length)
    const text = seen
      .filter((e) => e.event === "delta")
      .map((e) => e.data.text)
      .join("")
    expect(text).toBe(mockReplyText(tokens))
    expect(ended(seen)).toBe(true)
  }, 40_000)
})
