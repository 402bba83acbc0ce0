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

    const ok = { gen_ai_provider_name: "mock", coalesce: "leader", status: "ok" }
    const failed = { gen_ai_provider_name: "mock", coalesce: "leader", status: "error" }
    expect(
      value(after.samples, "dac_requests_total", ok) - value(before.samples, "dac_requests_total", ok),
    ).toBe(2)
    expect(
      value(after.samples, "dac_requests_total", failed) -
        value(before.samples, "dac_requests_total", failed),
    ).toBe(1)
    expect(after.types.get("dac_requests_total")).toBe("counter")
    expect(after.types.get("gen_ai_server_time_to_first_token_seconds")).toBe("histogram")

    const mock = { gen_ai_provider_name: "mock" }
    const count = (name: string) =>
      value(after.samples, `${name}_count`, mock) - value(before.samples, `${name}_count`, mock)
    expect(count("gen_ai_server_time_to_first_token_seconds")).toBe(3)
    expect(count("gen_ai_server_request_duration_seconds")).toBe(3)
    expect(count("dac_queue_wait_seconds")).toBe(3)
    // Buckets are cumulative: the +Inf bucket holds every observation.
    const ttft = "gen_ai_server_time_to_first_token_seconds"
    const inf = after.samples.find(
      (s) =>
        s.name === `${ttft}_bucket` && s.labels.le === "+Inf" && s.labels.gen_ai_provider_name === "mock",
    )
    expect(inf?.value).toBe(value(after.samples, `${ttft}_count`, mock))
    // Seconds, not milliseconds: the mock answers well within a second, and the buckets are the
    // conventions' (1 ms to 10 s).
    const sum = value(after.samples, `${ttft}_sum`, mock) - value(before.samples, `${ttft}_sum`, mock)
    expect(sum).toBeGreaterThan(0)
    expect(sum).toBeLessThan(3)
    expect(after.samples.some((s) => s.name === `${ttft}_bucket` && s.labels.le === "0.001")).toBe(true)

    expect(value(after.samples, "dac_pacer_in_flight", mock)).toBe(0)
    expect(
      value(after.samples, "dac_pacer_concurrency_limit", { gen_ai_provider_name: "openai" }),
    ).toBeGreaterThan(0)

    // The process's own health.
    expect(after.types.get("process_cpu_seconds_total")).toBe("counter")
    expect(value(after.samples, "process_cpu_seconds_total", {})).toBeGreaterThan(0)
    expect(value(after.samples, "process_resident_memory_bytes", {})).toBeGreaterThan(1_000_000)
    expect(after.types.get("nodejs_eventloop_lag_seconds")).toBe("gauge")
  })

  it("records the providers' reported tokens per call by provider, model and token type, with no org label", async () => {
    const before = await scrape()
    const c = api(gateway.baseUrl, `org-${crypto.randomUUID()}`)
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const turn = (content: string) => ({ role: "user", content, provider: "mock", model: "faststream-ttft" })
    const replies = [
      await c.post(`/api/threads/${threadId}/messages`, turn("tokens one")),
      await c.post(`/api/threads/${threadId}/messages`, turn("tokens two")),
    ]
    const after = await scrape()
    const usage = "gen_ai_client_token_usage"
    const labels = (type: string) => ({
      gen_ai_provider_name: "mock",
      gen_ai_request_model: "faststream-ttft",
      gen_ai_token_type: type,
    })
    // A histogram of tokens per call: its _sum is the tokens, its _count the calls.
    const delta = (type: string, part = "sum") =>
      value(after.samples, `${usage}_${part}`, labels(type)) -
      value(before.samples, `${usage}_${part}`, labels(type))
    const reported = (key: "input_tokens" | "output_tokens") =>
      replies.reduce((sum, r) => sum + r.json.assistant_message.usage[key], 0)
    expect(delta("output")).toBe(reported("output_tokens"))
    expect(delta("input")).toBe(reported("input_tokens"))
    expect(delta("output", "count")).toBe(2)
    expect(after.types.get(usage)).toBe("histogram")
    for (const sample of after.samples.filter((s) => s.name === `${usage}_sum`)) {
      expect(Object.keys(sample.labels).sort()).toEqual([
        "gen_ai_operation_name",
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_token_type",
      ])
    }
  })
})
