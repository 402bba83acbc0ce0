import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"
import { expectations } from "./expectations.ts"

/**
 * `UPSTREAM_STREAM_ALWAYS=0`: a request that waits for the whole reply asks the provider for one
 * body (each wire protocol's own non-streaming call), answered by the recorded non-streaming
 * transcripts; a streaming request still streams from upstream.
 */

let fake: FakeUpstream
let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  fake = await startFakeUpstream()
  gateway = await startGateway({ ...fake.env(), UPSTREAM_MAX_ATTEMPTS: "1", UPSTREAM_STREAM_ALWAYS: "0" })
})
afterAll(async () => {
  await gateway?.close()
  await fake?.close()
})
beforeEach(() => fake.reset())

const cases = [
  { provider: "openai", model: "openai-model", transcript: "openai-chat-nonstream" },
  { provider: "anthropic", model: "anthropic-model", transcript: "anthropic-messages-nonstream" },
  { provider: "gemini", model: "gemini-2.0-flash", transcript: "gemini-nonstream" },
] as const

const newThread = async () =>
  (await api(gateway.baseUrl, org).post("/api/threads", {})).json.thread_id as string

describe("UPSTREAM_STREAM_ALWAYS=0", () => {
  for (const { provider, model, transcript } of cases) {
    const expected = expectations[transcript]!
    if ("error" in expected) throw new Error(`${transcript} is a reply`)

    it(`${provider}: a waiting request makes one non-streaming call and gets the whole reply`, async () => {
      fake.on(provider, { transcript })
      const threadId = await newThread()
      const sent = await api(gateway.baseUrl, org).post(`/api/threads/${threadId}/messages`, {
        role: "user",
        content: `whole reply from ${provider}`,
        provider,
        model,
      })
      expect(sent.status).toBe(200)
      expect(sent.json.assistant_message).toMatchObject({
        content: expected.text,
        status: "complete",
        finish_reason: expected.finish,
        usage: expected.usage,
      })
      const call = fake.calls(provider).at(-1)!
      if (provider === "gemini") {
        expect(call.pathname).toMatch(/:generateContent$/)
        expect(call.query.get("alt")).toBeNull()
      } else {
        expect((call.body as { stream?: unknown }).stream).toBe(false)
        expect(call.body).not.toHaveProperty("stream_options")
      }
    })
  }

  it("a streaming request still streams from upstream", async () => {
    const threadId = await newThread()
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify({ role: "user", content: "stream it", provider: "openai", model: "openai-model" }),
    })
    await stream.done
    const expected = expectations["openai-chat-stream"]!
    if ("error" in expected) throw new Error("openai-chat-stream is a reply")
    expect(stream.text()).toBe(expected.text)
    expect(stream.events.filter((e) => e.event === "delta").length).toBeGreaterThan(1)
    const call = fake.calls("openai").at(-1)!
    expect(call.body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
  })
})
