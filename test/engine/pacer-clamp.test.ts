import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type FakeUpstream, limitUsedUpOnFirstCall, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { loadTranscript } from "../support/wire.ts"

/** A provider's pause hints are capped at UPSTREAM_MAX_PAUSE_MS, however far off they say. */
const capMs = 700
let upstream: FakeUpstream
let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  upstream = await startFakeUpstream()
  gateway = await startGateway({
    ...upstream.env(),
    UPSTREAM_MAX_ATTEMPTS: "1",
    UPSTREAM_MAX_PAUSE_MS: String(capMs),
  })
})
afterEach(() => upstream.reset())
afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
})

const client = () => api(gateway.baseUrl, org)
const newThread = async () => (await client().post("/api/threads", {})).json.thread_id as string
const send = (threadId: string, content: string) =>
  client().post(
    `/api/threads/${threadId}/messages`,
    { role: "user", content, provider: "openai", model: "gpt-4o-mini" },
    { "x-dac-coalesce": "off" },
  )

/**
 * Counts timers asked for past Node's limit while `run` runs: Node fires those after 1 ms, so a
 * pacer sleeping until a far-off pause would spin.
 */
const overflowingTimers = async (run: () => Promise<void>) => {
  const original = globalThis.setTimeout
  let overflowing = 0
  const counting = ((handler: () => void, delay?: number) => {
    if ((delay ?? 0) > 2 ** 31 - 1) overflowing++
    return original(handler, delay)
  }) as typeof setTimeout
  globalThis.setTimeout = counting
  try {
    await run()
  } finally {
    globalThis.setTimeout = original
  }
  return overflowing
}

const openAiPausedUntil = async () => {
  const ready = await api(gateway.baseUrl, undefined).get("/ready")
  const pacer = (ready.json.pacer as Array<{ provider: string; pausedUntil: number | null }>).find(
    (p) => p.provider === "openai",
  )
  return pacer!.pausedUntil
}

describe("a provider's pause hint", () => {
  it("a 429 with retry-after: 86400 pauses dispatch for the cap only, then dispatch resumes", async () => {
    const threadId = await newThread()
    const limited = loadTranscript("openai-error-429-rate-limit")
    upstream.on("openai", (_, index) =>
      index === 0
        ? {
            transcript: {
              ...limited,
              headers: [
                ["content-type", "application/json"],
                ["retry-after", "86400"],
              ],
            },
          }
        : { transcript: "openai-chat-stream" },
    )
    const overflowing = await overflowingTimers(async () => {
      const first = await send(threadId, "first")
      expect(first.status).toBe(503)
      const pausedUntil = await openAiPausedUntil()
      expect(pausedUntil).not.toBeNull()
      expect(pausedUntil! - Date.now()).toBeLessThanOrEqual(capMs)
      const second = await send(threadId, "second")
      expect(second.status).toBe(200)
    })
    expect(overflowing).toBe(0)
    const [a, b] = upstream.calls("openai")
    // Held (for about the cap), not dispatched at once.
    expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(capMs - 100)
  })

  it("a used-up limit resetting in 999h (past Node's longest timer) holds the next call for the cap, without spinning", async () => {
    const threadId = await newThread()
    upstream.on("openai", limitUsedUpOnFirstCall("999h"))
    const overflowing = await overflowingTimers(async () => {
      expect((await send(threadId, "one")).status).toBe(200)
      const pausedUntil = await openAiPausedUntil()
      expect(pausedUntil! - Date.now()).toBeLessThanOrEqual(capMs)
      expect((await send(threadId, "two")).status).toBe(200)
    })
    expect(overflowing).toBe(0)
    const [a, b] = upstream.calls("openai")
    expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(capMs - 100)
  })
})
