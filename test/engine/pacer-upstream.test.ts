import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type FakeUpstream, limitUsedUpOnFirstCall, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { loadTranscript } from "../support/wire.ts"

/** The pacer and coalescer in front of a real (fake) provider that counts what reaches it. */
let upstream: FakeUpstream
let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  upstream = await startFakeUpstream()
  gateway = await startGateway({
    ...upstream.env(),
    OPENAI_RPS: "20",
    OPENAI_BURST: "1",
    OPENAI_CONCURRENCY: "64",
    UPSTREAM_MAX_ATTEMPTS: "1",
    COALESCE_ERROR_TTL_MS: "300",
    // A loaded machine takes seconds to take 1,000 connections: the late ones still find the turn.
    COALESCE_REPEAT_WINDOW_MS: "10000",
  })
})
afterEach(() => upstream.reset())
afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
})

const client = () => api(gateway.baseUrl, org)
const newThread = async () => (await client().post("/api/threads", {})).json.thread_id as string
const turn = (content: string) => ({ role: "user", content, provider: "openai", model: "gpt-4o-mini" })
const expectedText = "The capital of the UK is London."

describe("coalescing in front of a provider", () => {
  it("1,000 identical concurrent requests reach the provider once", async () => {
    const threadId = await newThread()
    // The first answer takes a while, so every request arrives while it runs.
    upstream.on("openai", { transcript: "openai-chat-stream", firstByteDelayMs: 1500 })
    const responses = await Promise.all(
      Array.from({ length: 1000 }, () =>
        client().post(`/api/threads/${threadId}/messages`, turn("capital of France?")),
      ),
    )
    expect(responses.every((r) => r.status === 200)).toBe(true)
    expect(upstream.calls("openai")).toHaveLength(1)
    expect(new Set(responses.map((r) => r.json.assistant_message.content)).size).toBe(1)
    expect(responses[0]!.json.assistant_message.content.length).toBeGreaterThan(0)
    const thread = await client().get(`/api/threads/${threadId}`)
    expect(thread.json.messages).toHaveLength(2)
  })

  it("a leader's failure reaches every follower, and after the error TTL a new leader calls again", async () => {
    const threadId = await newThread()
    upstream.on("openai", { transcript: "openai-error-401", headersDelayMs: 200 })
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => client().post(`/api/threads/${threadId}/messages`, turn("who am I?"))),
    )
    expect(responses.every((r) => r.status === 502 && r.json.error.code === "upstream_unauthorized")).toBe(
      true,
    )
    expect(upstream.calls("openai")).toHaveLength(1)
    await new Promise((resolve) => setTimeout(resolve, 400))
    const again = await client().post(`/api/threads/${threadId}/messages`, turn("who am I?"))
    expect(again.status).toBe(502)
    expect(upstream.calls("openai")).toHaveLength(2)
  })
})

describe("pacing a provider", () => {
  it("respects the configured rate within 10% over a 10 s run", async () => {
    // 20 per second with a burst of 1: 201 calls span 10 s. A thread each (turns on one thread run
    // one at a time, which would pace them by their own latency).
    const n = 201
    const threads = await Promise.all(Array.from({ length: n }, () => newThread()))
    await Promise.all(
      threads.map((threadId, i) =>
        client().post(`/api/threads/${threadId}/messages`, turn(`distinct ${i}`), {
          "x-dac-coalesce": "off",
        }),
      ),
    )
    const arrivals = upstream.calls("openai").map((call) => call.receivedAt)
    expect(arrivals).toHaveLength(n)
    const rate = ((n - 1) * 1000) / (arrivals.at(-1)! - arrivals[0]!)
    expect(rate).toBeGreaterThan(18)
    expect(rate).toBeLessThan(22)
  })

  it("a 429 from the provider pauses dispatch for its retry delay", async () => {
    const threadId = await newThread()
    const limited = loadTranscript("openai-error-429-rate-limit")
    upstream.on("openai", (_, index) =>
      index === 0
        ? {
            transcript: {
              ...limited,
              headers: [
                ["content-type", "application/json"],
                ["retry-after", "1"],
              ],
            },
          }
        : { transcript: "openai-chat-stream" },
    )
    const first = await client().post(`/api/threads/${threadId}/messages`, turn("first"), {
      "x-dac-coalesce": "off",
    })
    expect(first.status).toBe(503)
    expect(first.json.error.code).toBe("upstream_rate_limited")
    const second = await client().post(`/api/threads/${threadId}/messages`, turn("second"), {
      "x-dac-coalesce": "off",
    })
    expect(second.status).toBe(200)
    expect(second.json.assistant_message.content).toBe(expectedText)
    const [a, b] = upstream.calls("openai")
    expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(950)
    expect(second.json.metrics.queue_wait_ms).toBeGreaterThan(800)
  })

  it("a successful answer saying a limit is used up holds the next call until it resets", async () => {
    const threadId = await newThread()
    upstream.on("openai", limitUsedUpOnFirstCall("800ms"))
    const first = await client().post(`/api/threads/${threadId}/messages`, turn("one"), {
      "x-dac-coalesce": "off",
    })
    expect(first.status).toBe(200)
    const second = await client().post(`/api/threads/${threadId}/messages`, turn("two"), {
      "x-dac-coalesce": "off",
    })
    expect(second.status).toBe(200)
    const [a, b] = upstream.calls("openai")
    expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(750)
  })
})
