import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  defaultTranscripts,
  type FakeUpstream,
  fakeProviders,
  startFakeUpstream,
} from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { expectations } from "./expectations.ts"

/**
 * The whole path: an HTTP turn on the gateway → Providers → the real adapter → real HTTP → the fake
 * upstream playing each provider's recorded stream, configured only through `<P>_BASE_URL` and
 * `<P>_API_KEY`, as a user would.
 */

let fake: FakeUpstream
let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  fake = await startFakeUpstream()
  gateway = await startGateway({ ...fake.env(), UPSTREAM_MAX_ATTEMPTS: "1" })
})
afterAll(async () => {
  await gateway?.close()
  await fake?.close()
})

describe("a turn through each remote provider, on the fake upstream", () => {
  for (const provider of fakeProviders) {
    const expected = expectations[defaultTranscripts[provider]]!
    if ("error" in expected) throw new Error("default transcripts are replies")

    it(provider, async () => {
      const client = api(gateway.baseUrl, org)
      const created = await client.post("/api/threads", { title: provider })
      expect(created.status).toBe(201)
      const threadId = created.json.thread_id as string
      const model = provider === "gemini" ? "gemini-2.0-flash" : `${provider}-model`

      const sent = await client.post(`/api/threads/${threadId}/messages`, {
        role: "user",
        content: "Tell me something short.",
        provider,
        model,
      })
      expect(sent.status).toBe(200)
      expect(sent.json.assistant_message).toMatchObject({
        role: "assistant",
        content: expected.text,
        status: "complete",
        provider,
        model,
        finish_reason: expected.finish,
        usage: expected.usage,
      })
      expect(sent.json.metrics.ttft_ms).toBeGreaterThan(0)

      const call = fake.calls(provider).at(-1)!
      expect(
        call.headers[
          provider === "anthropic" ? "x-api-key" : provider === "gemini" ? "x-goog-api-key" : "authorization"
        ],
      ).toContain(`test-key-${provider}`)

      const thread = await client.get(`/api/threads/${threadId}`)
      expect(thread.status).toBe(200)
      expect(thread.json.messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual(
        [
          ["user", "Tell me something short."],
          ["assistant", expected.text],
        ],
      )
    })
  }

  it("maps a provider's HTTP error to the gateway's error body", async () => {
    fake.on("anthropic", { transcript: "anthropic-error-401" })
    const client = api(gateway.baseUrl, org)
    const threadId = (await client.post("/api/threads")).json.thread_id as string
    const sent = await client.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "hi",
      provider: "anthropic",
      model: "claude-test",
    })
    expect(sent.status).toBe(502)
    expect(sent.json.error).toMatchObject({ code: "upstream_unauthorized", message: "invalid x-api-key" })
  })
})
