import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { loadTranscript } from "../support/wire.ts"

const secret = "sk-live-TOPSECRET-0123456789abcdef"
const lines: Array<string> = []
let upstream: FakeUpstream
let gateway: RunningGateway

beforeAll(async () => {
  for (const method of ["log", "info", "warn", "error", "debug", "trace"] as const) {
    vi.spyOn(console, method).mockImplementation((...args: Array<unknown>) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "))
    })
  }
  upstream = await startFakeUpstream()
  gateway = await startGateway({
    ...upstream.env(),
    OPENAI_API_KEY: secret,
    LOG_LEVEL: "Debug",
    MOCK_TOKENS: "3",
  })
})
afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
  vi.restoreAllMocks()
})

describe("logs", () => {
  it("are JSON lines naming the request, and never show an API key", async () => {
    // The provider echoes the key back in its error, as OpenAI does for a bad one.
    const rejected = loadTranscript("openai-error-401")
    upstream.on("openai", {
      transcript: {
        ...rejected,
        body: new TextEncoder().encode(
          JSON.stringify({
            error: { message: `Incorrect API key provided: ${secret}`, type: "invalid_request_error" },
          }),
        ),
      },
    })
    const c = api(gateway.baseUrl, "org-logs")
    const threadId = (await c.post("/api/threads", {})).json.thread_id
    const failed = await c.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "hello",
      provider: "openai",
      model: "gpt-4o-mini",
    })
    expect(failed.status).toBe(502)
    expect(failed.text).not.toContain(secret)
    const ok = await c.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "hello",
      provider: "mock",
      model: "faststream-ttft",
    })
    expect(ok.status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 100))

    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line).not.toContain(secret)
    const records = lines.map(
      (line) => JSON.parse(line) as { level: string; annotations: Record<string, unknown> },
    )
    const failure = records.find((r) => r.level === "WARN" && JSON.stringify(r).includes("upstream failed"))
    expect(failure?.annotations.request_id).toBeDefined()
    expect(failure?.annotations.org_id).toBe("org-logs")
    const completion = records.find((r) => JSON.stringify(r).includes("reply complete"))
    expect(completion?.annotations.request_id).toBe(ok.json.request_id)
  })
})
