import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

/**
 * Turns on one thread, as a chat user makes them: one at a time in arrival order, each sent with the
 * replies before it; identical concurrent sends share one turn; the same words sent again after the
 * reply are a new turn.
 */

let upstream: FakeUpstream
let gateway: RunningGateway
beforeAll(async () => {
  upstream = await startFakeUpstream()
  gateway = await startGateway({
    ...upstream.env(),
    OPENAI_RPS: "1000",
    OPENAI_BURST: "1000",
    COALESCE_REPEAT_WINDOW_MS: "100",
  })
})
afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
})
beforeEach(() => upstream.reset())

const send = (content: string) => ({ role: "user", content, provider: "openai", model: "gpt-4o-mini" })
const newThread = async (org: string) => {
  const c = api(gateway.baseUrl, org)
  return { c, threadId: (await c.post("/api/threads", {})).json.thread_id as string }
}
type Sent = { role: string; content: string }
const sentMessages = (index: number) =>
  (upstream.calls("openai")[index]!.body as { messages: ReadonlyArray<Sent> }).messages.map((m) => [
    m.role,
    m.content,
  ])

describe("one turn at a time per thread", () => {
  it("a second message waits for the first reply, is told its place at once, and is sent with that reply", async () => {
    const org = `org-${crypto.randomUUID()}`
    const { c, threadId } = await newThread(org)
    // The first reply takes a while to come, so the second arrives while it runs.
    upstream.on("openai", { transcript: "openai-chat-stream", firstByteDelayMs: 150 })
    const headers = { "x-org-id": org, "content-type": "application/json", accept: "text/event-stream" }
    const url = `${gateway.baseUrl}/api/threads/${threadId}/messages/stream`
    const first = openStream(url, { method: "POST", headers, body: JSON.stringify(send("first")) })
    await first.until((events) => events.some((e) => e.event === "meta"))
    await new Promise((resolve) => setTimeout(resolve, 30))
    const second = openStream(url, { method: "POST", headers, body: JSON.stringify(send("second")) })
    // Its ping and meta come at once, while the first reply still runs, with its place in the queue.
    await second.until((events) => events.some((e) => e.event === "meta"))
    expect(second.events[0]?.event).toBe("ping")
    expect(second.events[1]?.data).toMatchObject({ coalesce: "leader", queue_position: 1 })
    expect(first.events.some((e) => ["done", "error"].includes(e.event))).toBe(false)
    await Promise.all([first.done, second.done])
    expect(first.events.at(-1)?.event).toBe("done")
    expect(second.events.at(-1)?.event).toBe("done")

    const firstReply = first.events
      .filter((e) => e.event === "delta")
      .map((e) => e.data.text)
      .join("")
    expect(upstream.calls("openai")).toHaveLength(2)
    expect(sentMessages(0)).toEqual([["user", "first"]])
    expect(sentMessages(1)).toEqual([
      ["user", "first"],
      ["assistant", firstReply],
      ["user", "second"],
    ])
    const thread = (await c.get(`/api/threads/${threadId}`)).json
    expect(thread.messages.map((m: Sent) => [m.role, m.content])).toEqual([
      ["user", "first"],
      ["assistant", firstReply],
      ["user", "second"],
      ["assistant", expect.any(String)],
    ])
  })

  it("the same words sent again after the reply are a new turn; identical concurrent sends share one", async () => {
    const org = `org-${crypto.randomUUID()}`
    const { c, threadId } = await newThread(org)
    const path = `/api/threads/${threadId}/messages`
    const once = await c.post(path, send("continue"))
    expect(once.json.coalesce).toBe("leader")
    // Past COALESCE_REPEAT_WINDOW_MS (a retry that crossed the reply would come sooner).
    await new Promise((resolve) => setTimeout(resolve, 150))
    const again = await c.post(path, send("continue"))
    expect(again.status).toBe(200)
    expect(again.json.coalesce).toBe("leader")
    expect(again.json.request_id).not.toBe(once.json.request_id)
    expect(upstream.calls("openai")).toHaveLength(2)
    expect(sentMessages(1).at(-1)).toEqual(["user", "continue"])
    expect(sentMessages(1)).toHaveLength(3)

    // A double submit: both arrive while the first runs, and share one turn.
    upstream.on("openai", { transcript: "openai-chat-stream", firstByteDelayMs: 100 })
    const both = await Promise.all([c.post(path, send("yes")), c.post(path, send("yes"))])
    expect(both.map((r) => r.json.coalesce).sort()).toEqual(["follower", "leader"])
    expect(both[0]!.json.assistant_message.message_id).toBe(both[1]!.json.assistant_message.message_id)
    expect(upstream.calls("openai")).toHaveLength(3)
    const messages = (await c.get(`/api/threads/${threadId}`)).json.messages
    expect(messages.map((m: Sent) => m.content).filter((text: string) => text === "continue")).toHaveLength(2)
    expect(messages).toHaveLength(6)
  })

  it("parent_message_id: answering the last reply is a new turn at once; one the thread moved past is refused, unless it repeats the turn that moved it", async () => {
    const org = `org-${crypto.randomUUID()}`
    const { c, threadId } = await newThread(org)
    const path = `/api/threads/${threadId}/messages`
    const first = await c.post(path, send("go on"))
    const reply = first.json.assistant_message.message_id
    // At once (within the repeat window), but as the answer to the reply: a new turn.
    const next = await c.post(path, { ...send("go on"), parent_message_id: reply })
    expect(next.json.coalesce).toBe("leader")
    // A duplicate of that send (same parent, same words) is that turn.
    const duplicate = await c.post(path, { ...send("go on"), parent_message_id: reply })
    expect(duplicate.json.coalesce).toBe("cache_hit")
    expect(duplicate.json.assistant_message.message_id).toBe(next.json.assistant_message.message_id)
    // Other words answering a reply the thread has moved past: 409.
    const stale = await c.post(path, { ...send("something else"), parent_message_id: reply })
    expect(stale.status).toBe(409)
    expect(stale.json.error.code).toBe("thread_moved")
    expect((await c.get(`/api/threads/${threadId}`)).json.messages).toHaveLength(4)
  })

  it("a reply is stored as it grows: the thread shows its text while it streams", async () => {
    const org = `org-${crypto.randomUUID()}`
    const { c, threadId } = await newThread(org)
    // A slow stream: the writer (every 250 ms) stores part of it before it ends.
    upstream.on("openai", {
      transcript: "openai-chat-stream",
      split: "random",
      maxWrite: 24,
      writeDelayMs: 40,
    })
    const headers = { "x-org-id": org, "content-type": "application/json" }
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers,
      body: JSON.stringify(send("grow")),
    })
    let seenWhileStreaming: { status: string; content: string } | undefined
    for (let i = 0; i < 200 && seenWhileStreaming === undefined; i++) {
      const reply = (await c.get(`/api/threads/${threadId}`)).json.messages[1]
      if (reply?.status === "streaming" && reply.content !== "") seenWhileStreaming = reply
      else await new Promise((resolve) => setTimeout(resolve, 25))
    }
    await stream.done
    const full = stream.events
      .filter((e) => e.event === "delta")
      .map((e) => e.data.text)
      .join("")
    expect(seenWhileStreaming).toBeDefined()
    expect(full.startsWith(seenWhileStreaming!.content)).toBe(true)
    const stored = (await c.get(`/api/threads/${threadId}`)).json.messages[1]
    expect(stored).toMatchObject({ status: "complete", content: full })
  })

  it("x-dac-on-disconnect: hold: a lone client's dropped stream keeps the reply running, and its reconnect continues it; without it, the hang-up cancels", async () => {
    const org = `org-${crypto.randomUUID()}`
    const slow = {
      transcript: "openai-chat-stream",
      split: "random" as const,
      maxWrite: 16,
      writeDelayMs: 30,
    }
    const headers = { "x-org-id": org, "content-type": "application/json" }
    const drop = async (extra: Record<string, string>) => {
      const { c, threadId } = await newThread(org)
      upstream.on("openai", slow)
      const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
        method: "POST",
        headers: { ...headers, ...extra },
        body: JSON.stringify(send("hold on")),
      })
      await stream.until((events) => events.some((e) => e.event === "delta"))
      stream.abort()
      await stream.done
      const requestId = stream.events[1]!.data.request_id as string
      const lastId = stream.events.at(-1)!.id
      await new Promise((resolve) => setTimeout(resolve, 150))
      const resumed = openStream(`${gateway.baseUrl}/api/threads/${threadId}/stream/${requestId}`, {
        headers: { ...headers, ...extra, "last-event-id": String(lastId) },
      })
      await resumed.done
      return { c, threadId, before: stream.text(), resumed }
    }

    const held = await drop({ "x-dac-on-disconnect": "hold" })
    expect(held.resumed.events.at(-1)?.event).toBe("done")
    const whole = held.before + held.resumed.text()
    expect((await held.c.get(`/api/threads/${held.threadId}`)).json.messages[1]).toMatchObject({
      status: "complete",
      content: whole,
    })

    const cancelled = await drop({})
    expect(cancelled.resumed.events.at(-1)?.event).toBe("cancelled")
    expect((await cancelled.c.get(`/api/threads/${cancelled.threadId}`)).json.messages[1].status).toBe(
      "cancelled",
    )
  })
})
