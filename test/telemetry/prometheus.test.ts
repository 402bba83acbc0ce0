import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** A small parser of the text exposition format: HELP/TYPE comments and `name{labels} value` lines. */
const parseExposition = (text: string) => {
  const types = new Map<string, string>()
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line === "") continue
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type) {
      types.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith("#")) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line)
    if (!sample) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!
    }
    samples.push({ name: sample[1]!, labels, value: Number(sample[3]) })
  }
  return { types, samples }
}

let gateway: RunningGateway
beforeAll(async () => {
  gateway = await startGateway({ MOCK_TOKENS: "3", MOCK_TTFT_MS: "5", MOCK_TOKEN_INTERVAL_MS: "1" })
})
afterAll(() => gateway?.close())

const scrape = async () => {
  const response = await fetch(`${gateway.baseUrl}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toMatch(/^text\/plain/)
  return parseExposition(await response.text())
}

const value = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string>) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)

describe("GET /metrics", () => {
  it("exposes request counts, timing histograms and pacer gauges in the Prometheus text format", async () => {
    const before = await scrape()
    const c = api(gateway.baseUrl, `org-${crypto.randomUUID()}`)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const turn = (content: string, model = "faststream-ttft") => ({
      role: "user",
      content,
      provider: "mock",
      model,
    })
    await c.post(`/api/threads/${threadId}/messages`, turn("a"))
    await c.post(`/api/threads/${threadId}/messages`, turn("b"))
    await c.post(`/api/threads/${threadId}/messages`, turn("c", "failing-midstream"))
    const after = await scrape()

    const ok = { provider: "mock", coalesce: "leader", status: "ok" }
    const failed = { provider: "mock", coalesce: "leader", status: "error" }
    expect(
      value(after.samples, "dac_requests_total", ok) - value(before.samples, "dac_requests_total", ok),
    ).toBe(2)
    expect(
      value(after.samples, "dac_requests_total", failed) -
        value(before.samples, "dac_requests_total", failed),
    ).toBe(1)
    expect(after.types.get("dac_requests_total")).toBe("counter")
    expect(after.types.get("dac_ttft_ms")).toBe("histogram")

    const count = (name: string) =>
      value(after.samples, `${name}_count`, { provider: "mock" }) -
      value(before.samples, `${name}_count`, { provider: "mock" })
    expect(count("dac_ttft_ms")).toBe(3)
    expect(count("dac_request_duration_ms")).toBe(3)
    expect(count("dac_queue_wait_ms")).toBe(3)
    // Buckets are cumulative: the +Inf bucket holds every observation.
    const inf = after.samples.find(
      (s) => s.name === "dac_ttft_ms_bucket" && s.labels.le === "+Inf" && s.labels.provider === "mock",
    )
    expect(inf?.value).toBe(value(after.samples, "dac_ttft_ms_count", { provider: "mock" }))

    expect(value(after.samples, "dac_pacer_in_flight", { provider: "mock" })).toBe(0)
    expect(value(after.samples, "dac_pacer_concurrency_limit", { provider: "openai" })).toBeGreaterThan(0)
  })

  it("counts the providers' reported tokens by provider, model and direction, with no org label", async () => {
    const before = await scrape()
    const c = api(gateway.baseUrl, `org-${crypto.randomUUID()}`)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const turn = (content: string) => ({ role: "user", content, provider: "mock", model: "faststream-ttft" })
    const replies = [
      await c.post(`/api/threads/${threadId}/messages`, turn("tokens one")),
      await c.post(`/api/threads/${threadId}/messages`, turn("tokens two")),
    ]
    const after = await scrape()
    const labels = (direction: string) => ({ provider: "mock", model: "faststream-ttft", direction })
    const delta = (direction: string) =>
      value(after.samples, "dac_tokens_total", labels(direction)) -
      value(before.samples, "dac_tokens_total", labels(direction))
    const reported = (key: "input_tokens" | "output_tokens") =>
      replies.reduce((sum, r) => sum + r.json.assistant_message.usage[key], 0)
    expect(delta("output")).toBe(reported("output_tokens"))
    expect(delta("input")).toBe(reported("input_tokens"))
    expect(after.types.get("dac_tokens_total")).toBe("counter")
    for (const sample of after.samples.filter((s) => s.name === "dac_tokens_total")) {
      expect(Object.keys(sample.labels).sort()).toEqual(["direction", "model", "provider"])
    }
  })
})
