import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

/** A reply that keeps the client waiting (a slow first token) gets `: keepalive` comments meanwhile. */

let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`
const tokens = 5

beforeAll(async () => {
  gateway = await startGateway({
    SSE_KEEPALIVE_MS: "100",
    MOCK_TTFT_MS: "700",
    MOCK_TOKENS: String(tokens),
    MOCK_TOKEN_INTERVAL_MS: "1",
  })
})
afterAll(() => gateway?.close())

describe("keepalives on a quiet stream", () => {
  it("a thread's reply stream: comments while waiting, events and ids untouched", async () => {
    const threadId = (await api(gateway.baseUrl, org).post("/api/threads", {})).json.thread_id as string
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify({
        role: "user",
        content: "take your time",
        provider: "mock",
        model: "faststream-ttft",
      }),
    })
    await stream.done
    expect(stream.comments.filter((c) => c.trim() === "keepalive").length).toBeGreaterThanOrEqual(3)
    expect(stream.text()).toBe(mockReplyText(tokens))
    const ids = stream.events.map((e) => e.id)
    expect(ids).toEqual(ids.map((_, i) => i))
    expect(stream.events.at(-1)!.event).toBe("done")
  })

  it("an OpenAI-format stream: comments on the wire, and the SDK reads the reply unchanged", async () => {
    const response = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer keepalive-test", "content-type": "application/json" },
      body: JSON.stringify({
        model: "mock/faststream-ttft",
        messages: [{ role: "user", content: "raw and slow" }],
        stream: true,
      }),
    })
    const raw = await response.text()
    expect(raw.split("\n").filter((line) => line === ": keepalive").length).toBeGreaterThanOrEqual(3)
    expect(raw.trimEnd().endsWith("data: [DONE]")).toBe(true)

    const client = new OpenAI({ apiKey: "keepalive-test", baseURL: `${gateway.baseUrl}/v1` })
    const stream = await client.chat.completions.create({
      model: "mock/faststream-ttft",
      messages: [{ role: "user", content: "through the SDK, slowly" }],
      stream: true,
    })
    let text = ""
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ""
    expect(text).toBe(mockReplyText(tokens))
  })
})
