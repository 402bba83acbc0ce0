import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, startGateway } from "../support/gateway.ts"

/** A minimal OTLP/HTTP receiver on loopback: keeps every JSON body posted to /v1/{traces,metrics,logs}. */
const received: Record<string, Array<unknown>> = { traces: [], metrics: [], logs: [] }
let receiver: Server
let endpoint: string

beforeAll(async () => {
  receiver = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const signal = /^\/v1\/(traces|metrics|logs)$/.exec(request.url ?? "")?.[1]
      if (signal) received[signal]!.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())))

interface OtlpSpan {
  readonly name: string
  readonly attributes: ReadonlyArray<{ key: string; value: Record<string, unknown> }>
}

const spansOf = (bodies: ReadonlyArray<unknown>): Array<OtlpSpan> =>
  (bodies as Array<{ resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<OtlpSpan> }> }> }>).flatMap(
    (body) => body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)),
  )

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value
  return value === undefined ? undefined : Object.values(value)[0]
}

describe("OpenTelemetry export", () => {
  it("sends spans with GenAI attributes and the request metrics to the OTLP endpoint", async () => {
    const gateway = await startGateway({
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "dac-under-test",
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      MOCK_TOKENS: "3",
    })
    const c = api(gateway.baseUrl, "org-otel")
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const sent = await c.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "trace me",
      provider: "mock",
      model: "faststream-ttft",
    })
    expect(sent.status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 600))
    // Closing flushes what is still buffered.
    await gateway.close()

    const spans = spansOf(received.traces!)
    const names = new Set(spans.map((s) => s.name))
    expect(names).toContain("Turns.start")
    expect(names).toContain("pacer.wait")
    expect(names).toContain("MessagesRepo.insertTurn")
    const generation = spans.find((s) => s.name === "generation")
    expect(generation).toBeDefined()
    expect(attribute(generation!, "gen_ai.provider.name")).toBe("mock")
    expect(attribute(generation!, "gen_ai.request.model")).toBe("faststream-ttft")
    expect(Number(attribute(generation!, "gen_ai.usage.output_tokens"))).toBe(3)
    expect(attribute(generation!, "dac.request_id")).toBe(sent.json.request_id)
    expect([...names].some((name) => /POST|http/i.test(name))).toBe(true)

    interface OtlpMetric {
      readonly name: string
      readonly unit?: string
      readonly histogram?: { dataPoints: ReadonlyArray<OtlpSpan> }
    }
    const metrics = new Map<string, OtlpMetric>()
    for (const body of received.metrics as Array<{
      resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<OtlpMetric> }> }>
    }>)
      for (const r of body.resourceMetrics)
        for (const s of r.scopeMetrics) for (const m of s.metrics) metrics.set(m.name, m)
    // OTLP carries the GenAI conventions' names and units; Prometheus gets its own spelling.
    for (const [name, unit] of [
      ["dac.requests", "{request}"],
      ["gen_ai.server.time_to_first_token", "s"],
      ["gen_ai.server.request.duration", "s"],
      ["gen_ai.client.token.usage", "{token}"],
      ["dac.pacer.queue_wait", "s"],
      ["process.cpu.time", "s"],
      ["process.memory.usage", "By"],
      ["nodejs.eventloop.delay.p99", "s"],
    ] as const) {
      expect(metrics.get(name)?.unit, name).toBe(unit)
    }
    const ttft = metrics.get("gen_ai.server.time_to_first_token")!.histogram!.dataPoints[0]!
    expect(attribute(ttft, "gen_ai.provider.name")).toBe("mock")
    expect(attribute(ttft, "gen_ai.operation.name")).toBe("chat")
    const usage = metrics.get("gen_ai.client.token.usage")!.histogram!.dataPoints
    expect(usage.map((p) => attribute(p, "gen_ai.token.type")).sort()).toEqual(["input", "output"])
    expect(attribute(usage[0]!, "gen_ai.request.model")).toBe("faststream-ttft")
    const resource = JSON.stringify(
      (received.traces![0] as { resourceSpans: Array<{ resource: unknown }> }).resourceSpans[0]!.resource,
    )
    expect(resource).toContain("dac-under-test")
  })

  it("exports no secret: with keys on, neither the API key, the admin key nor the provider's key is in any span, metric or log", async () => {
    for (const signal of Object.keys(received)) received[signal] = []
    const adminKey = `admin-${crypto.randomUUID()}`
    const providerKey = `sk-provider-${crypto.randomUUID()}`
    const gateway = await startGateway({
      AUTH_MODE: "keys",
      ADMIN_API_KEY: adminKey,
      OPENAI_API_KEY: providerKey,
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
      UPSTREAM_MAX_ATTEMPTS: "1",
      LOG_LEVEL: "All",
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
    })
    const admin = api(gateway.baseUrl, undefined)
    const issued = await admin.post(
      "/admin/keys",
      { org_id: "org-otel-secrets" },
      { authorization: `Bearer ${adminKey}` },
    )
    const key = issued.json.key as string
    const c = api(gateway.baseUrl, undefined)
    const auth = { authorization: `Bearer ${key}` }
    const threadId = (await c.post("/api/threads", {}, auth)).json.thread_id
    expect(
      (
        await c.post(
          `/api/threads/${threadId}/messages`,
          { role: "user", content: "hi", provider: "mock", model: "faststream-ttft" },
          auth,
        )
      ).status,
    ).toBe(200)
    // A call to a provider that cannot be reached: its error path carries the provider's key.
    await c.post(
      "/v1/chat/completions",
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] },
      { "x-api-key": key },
    )
    await c.post("/api/threads", {}, { authorization: "Bearer dac_not-a-real-key" })
    await new Promise((resolve) => setTimeout(resolve, 600))
    await gateway.close()
    const exported = JSON.stringify(received)
    expect(spansOf(received.traces!).length).toBeGreaterThan(0)
    for (const secret of [key, adminKey, providerKey, "dac_not-a-real-key"])
      expect(exported).not.toContain(secret)
  })
})
