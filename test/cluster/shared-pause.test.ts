import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dropPrefix, reachable, runPrefix } from "../support/cluster.ts"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

/**
 * A provider's 429 seen by one replica pauses and halves the provider for every replica: two
 * gateways in this process on one Redis (the pause is in Redis, not in either process).
 */

const redisUp = await reachable(6379)
if (!redisUp) console.warn("no Redis at 127.0.0.1:6379: skipping the shared 429 pause test")

let upstream: FakeUpstream
let a: RunningGateway
let b: RunningGateway
const prefix = runPrefix("pause")

describe.skipIf(!redisUp)("the 429 pause and the adaptive limit are shared", () => {
  beforeAll(async () => {
    upstream = await startFakeUpstream()
    // The first call is refused with `retry-after: 1`; every later one answers.
    upstream.on("openai", (_request, index) =>
      index === 0 ? { transcript: "openai-error-429-rate-limit" } : { transcript: "openai-chat-stream" },
    )
    const env = {
      ...upstream.env(),
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_KEY_PREFIX: prefix,
      REPLICA_COUNT: "2",
      UPSTREAM_MAX_ATTEMPTS: "1",
      OPENAI_CONCURRENCY: "64",
    }
    a = await startGateway({ ...env, REPLICA_ID: "a" })
    b = await startGateway({ ...env, REPLICA_ID: "b" })
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await upstream?.close()
    await dropPrefix("redis://127.0.0.1:6379", prefix)
  })

  it("a 429 answered to replica A holds replica B's next call for its retry-after, and halves the limit for both", async () => {
    const turn = (content: string) => ({ role: "user", content, provider: "openai", model: "gpt-4o-mini" })
    const onA = api(a.baseUrl, `org-${crypto.randomUUID()}`)
    const onB = api(b.baseUrl, `org-${crypto.randomUUID()}`)
    const threadA = (await onA.post("/api/threads", {})).json.thread_id
    const threadB = (await onB.post("/api/threads", {})).json.thread_id
    const refused = await onA.post(`/api/threads/${threadA}/messages`, turn("first"))
    expect(refused.status).not.toBe(200)
    const refusedAt = upstream.calls("openai")[0]!.receivedAt
    const paused = await onB.get("/ready")
    const budget = paused.json.shared.pacer.find((p: { provider: string }) => p.provider === "openai")
    expect(budget.pausedUntil).not.toBeNull()
    const answered = await onB.post(`/api/threads/${threadB}/messages`, turn("second"))
    expect(answered.status).toBe(200)
    const waited = upstream.calls("openai")[1]!.receivedAt - refusedAt
    // `retry-after: 1`: B's call waited for A's pause (less the time the 429 took to come back).
    expect(waited).toBeGreaterThan(800)
    const after = (await onB.get("/ready")).json.shared.pacer.find(
      (p: { provider: string }) => p.provider === "openai",
    )
    // 64 halved to 32 by A's 429, plus one for B's success (Redis read now).
    expect(after.concurrencyLimit).toBe(33)
    expect(after.readAgoMs).toBe(0)
  })
})
