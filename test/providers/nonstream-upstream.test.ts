import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"
import { expectations } from "./expectations.ts"

/**
 * `UPSTREAM_STREAM`: a request that waits for the whole reply asks the provider for one body (each
 * wire protocol's own non-streaming call, answered by the recorded non-streaming transcripts) unless
 * its calls are to stream: `requested` streams only for streaming clients, `threads` (the default)
 * also for thread turns, `always` for everything.
 */

let fake: FakeUpstream
/** `UPSTREAM_STREAM=requested`. */
let gateway: RunningGateway
/** The default, `UPSTREAM_STREAM=threads`. */
let byDefault: RunningGateway
let always: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  fake = await startFakeUpstream()
  const env = { ...fake.env(), UPSTREAM_MAX_ATTEMPTS: "1" }
  // One after another: the first runs the store's migrations.
  gateway = await startGateway({ ...env, UPSTREAM_STREAM: "requested" })
  byDefault = await startGateway(env)
  always = await startGateway({ ...env, UPSTREAM_STREAM: "always" })
})
afterAll(async () => {
  await Promise.all([gateway?.close(), byDefault?.close(), always?.close()])
  await fake?.close()
})
beforeEach(() => fake.reset())

const cases = [
  { provider: "openai", model: "openai-model", transcript: "openai-chat-nonstream" },
  { provider: "anthropic", model: "anthropic-model", transcript: "anthropic-messages-nonstream" },
  { provider: "gemini", model: "gemini-2.0-flash", transcript: "gemini-nonstream" },
] as const

const newThread = async (on = gateway) =>
  (await api(on.baseUrl, org).post("/api/threads", {})).json.thread_id as string

/** What the last call to the OpenAI-format provider asked for. */
const lastOpenAiCallStreamed = () => (fake.calls("openai").at(-1)!.body as { stream?: unknown }).stream

const completion = (on: RunningGateway, content: string, stream: boolean) =>
  fetch(`${on.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "x-org-id": org, "content-type": "application/json" },
    body: JSON.stringify({ model: "openai/openai-model", messages: [{ role: "user", content }], stream }),
  })

describe("UPSTREAM_STREAM=requested", () => {
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

describe("UPSTREAM_STREAM=threads (the default)", () => {
  it("a thread turn streams from upstream even when its client waits", async () => {
    fake.on("openai", { transcript: "openai-chat-stream" })
    const threadId = await newThread(byDefault)
    const sent = await api(byDefault.baseUrl, org).post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "a thread turn",
      provider: "openai",
      model: "openai-model",
    })
    expect(sent.status).toBe(200)
    expect(lastOpenAiCallStreamed()).toBe(true)
  })

  it("a stateless completion asks for what its client asked for", async () => {
    fake.on("openai", { transcript: "openai-chat-nonstream" })
    const whole = await completion(byDefault, "one body, please", false)
    expect(whole.status).toBe(200)
    const reply = (await whole.json()) as { choices: Array<{ message: { content: string } }> }
    expect(reply.choices[0]).toMatchObject({
      message: { content: expectations["openai-chat-nonstream"]!.text },
    })
    expect(lastOpenAiCallStreamed()).toBe(false)

    fake.on("openai", { transcript: "openai-chat-stream" })
    const streamed = await completion(byDefault, "a stream, please", true)
    expect(await streamed.text()).toContain("data: [DONE]")
    expect(lastOpenAiCallStreamed()).toBe(true)
  })

  it("a streaming request never joins an identical one fetched in one body: each gets its own call", async () => {
    fake.on("openai", { transcript: "openai-chat-nonstream", firstByteDelayMs: 300 })
    const waiting = completion(byDefault, "same words", false)
    await new Promise((resolve) => setTimeout(resolve, 100))
    fake.on("openai", { transcript: "openai-chat-stream" })
    const streamed = await completion(byDefault, "same words", true)
    const text = await streamed.text()
    expect(text.match(/"content":"[^"]+"/g)?.length).toBeGreaterThan(1)
    expect((await waiting).status).toBe(200)
    expect(fake.calls("openai").map((call) => (call.body as { stream?: unknown }).stream)).toEqual([
      false,
      true,
    ])
  })
})

describe("UPSTREAM_STREAM=always", () => {
  it("a stateless completion whose client waits still streams from upstream", async () => {
    fake.on("openai", { transcript: "openai-chat-stream" })
    const whole = await completion(always, "stream it anyway", false)
    expect(whole.status).toBe(200)
    expect(lastOpenAiCallStreamed()).toBe(true)
  })
})
