import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream, type ParsedEvent } from "../support/sse-client.ts"

const tokens = 30
let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  gateway = await startGateway({
    MOCK_TOKENS: String(tokens),
    MOCK_TTFT_MS: "5",
    MOCK_TOKEN_INTERVAL_MS: "10",
  })
})
afterAll(() => gateway?.close())

const client = () => api(gateway.baseUrl, org)
const newThread = async () => (await client().post("/api/threads", {})).json.thread_id as string
const body = (model = "faststream-ttft") =>
  JSON.stringify({ role: "user", content: "stream please", provider: "mock", model })
const headers = { "x-org-id": org, "content-type": "application/json" }

const startStream = (threadId: string, model?: string) =>
  openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
    method: "POST",
    headers,
    body: body(model),
  })

const join = (threadId: string, requestId: string, lastEventId?: number) =>
  openStream(`${gateway.baseUrl}/api/threads/${threadId}/stream/${requestId}`, {
    method: "GET",
    headers: {
      "x-org-id": org,
      ...(lastEventId === undefined ? {} : { "last-event-id": String(lastEventId) }),
    },
  })

const requestIdOf = (events: ReadonlyArray<ParsedEvent>) =>
  events.find((e) => e.data.request_id)!.data.request_id as string
const terminal = (events: ReadonlyArray<ParsedEvent>) =>
  events.filter((e) => e.event === "done" || e.event === "error" || e.event === "cancelled")
const deltas = (events: ReadonlyArray<ParsedEvent>) => events.filter((e) => e.event === "delta").length

const assistantOf = async (threadId: string) => {
  const thread = await client().get(`/api/threads/${threadId}`)
  return thread.json.messages.filter((m: { role: string }) => m.role === "assistant").at(-1)
}

const eventually = async (check: () => Promise<boolean>, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("a streamed reply", () => {
  it("has the SSE headers, ping first, meta, ttft meta, deltas, one terminal event, increasing ids", async () => {
    const threadId = await newThread()
    const stream = startStream(threadId)
    await stream.done
    expect(stream.status).toBe(200)
    expect(stream.headers?.get("content-type")).toMatch(/^text\/event-stream/)
    expect(stream.headers?.get("cache-control")).toBe("no-cache, no-transform")
    expect(stream.headers?.get("x-accel-buffering")).toBe("no")
    expect(stream.headers?.get("content-encoding")).toBeNull()

    const { events } = stream
    expect(events[0]!.event).toBe("ping")
    expect(events[1]!.event).toBe("meta")
    expect(events[1]!.data).toMatchObject({
      type: "meta",
      provider: "mock",
      model: "faststream-ttft",
      coalesce: "leader",
    })
    expect(events[1]!.data.request_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(events[1]!.data.generation_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(events[2]!.event).toBe("meta")
    expect(events[2]!.data.ttft_ms).toBeGreaterThan(0)
    expect(stream.text()).toBe(mockReplyText(tokens))
    expect(terminal(events)).toHaveLength(1)
    expect(events.at(-1)!.event).toBe("done")
    expect(events.at(-1)!.data).toMatchObject({ type: "done", finish_reason: "stop" })
    for (let i = 1; i < events.length; i++) expect(events[i]!.id).toBeGreaterThan(events[i - 1]!.id)

    const assistant = await assistantOf(threadId)
    expect(assistant).toMatchObject({ status: "complete", content: mockReplyText(tokens) })
    expect(events.at(-1)!.data.message_id).toBe(assistant.message_id)
  })

  it("is what POST /messages answers with Accept: text/event-stream", async () => {
    const threadId = await newThread()
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages`, {
      method: "POST",
      headers: { ...headers, accept: "text/event-stream" },
      body: body(),
    })
    await stream.done
    expect(stream.headers?.get("content-type")).toMatch(/^text\/event-stream/)
    expect(stream.events[0]!.event).toBe("ping")
    expect(stream.text()).toBe(mockReplyText(tokens))
  })

  it("ends with an error event and keeps the partial text as failed when the provider fails", async () => {
    const threadId = await newThread()
    const stream = startStream(threadId, "failing-midstream")
    await stream.done
    const last = stream.events.at(-1)!
    expect(last.event).toBe("error")
    expect(last.data).toMatchObject({ code: "upstream_stream_error", retryable: false })
    expect(terminal(stream.events)).toHaveLength(1)
    const assistant = await assistantOf(threadId)
    expect(assistant).toMatchObject({
      status: "failed",
      error_code: "upstream_stream_error",
      content: stream.text(),
    })
    expect(stream.text().length).toBeGreaterThan(0)
  })

  it("answers bad input with a JSON error, not a stream", async () => {
    const threadId = await newThread()
    const response = await client().post(`/api/threads/${threadId}/messages/stream`, {
      role: "user",
      content: "",
    })
    expect(response.status).toBe(400)
    expect(response.json.error.code).toBe("invalid_request")
  })
})

describe("fan-out", () => {
  it("a late joiner gets text identical to the first listener's", async () => {
    const threadId = await newThread()
    const first = startStream(threadId)
    await first.until((events) => deltas(events) >= 5)
    const late = join(threadId, requestIdOf(first.events))
    await Promise.all([first.done, late.done])
    expect(late.text()).toBe(first.text())
    expect(late.text()).toBe(mockReplyText(tokens))
    expect(late.events[0]!.event).toBe("ping")
    expect(late.events.at(-1)!.event).toBe("done")
    expect(late.events.at(-1)!.id).toBe(first.events.at(-1)!.id)
  })

  it("resuming with Last-Event-ID gets exactly the missing events", async () => {
    const threadId = await newThread()
    const first = startStream(threadId)
    await first.until((events) => deltas(events) >= 4)
    const seen = first.events.at(-1)!.id
    const resumed = join(threadId, requestIdOf(first.events), seen)
    await Promise.all([first.done, resumed.done])
    expect(resumed.events.map((e) => e.id)).toEqual(first.events.filter((e) => e.id > seen).map((e) => e.id))
    expect(resumed.events.map((e) => e.data)).toEqual(
      first.events.filter((e) => e.id > seen).map((e) => e.data),
    )
  })

  it("resuming a finished reply with Last-Event-ID gets exactly the missing events", async () => {
    const threadId = await newThread()
    const first = startStream(threadId)
    await first.done
    // Ids 0 and 1 are the request's own; pick one in the middle of the deltas.
    const seen = first.events.filter((e) => e.event === "delta")[10]!.id
    const resumed = join(threadId, requestIdOf(first.events), seen)
    await resumed.done
    const missing = first.events.filter((e) => e.id > seen)
    expect(resumed.events.map((e) => e.id)).toEqual(missing.map((e) => e.id))
    expect(resumed.events.map((e) => e.data)).toEqual(missing.map((e) => e.data))
  })

  it("a live reply is joined only through its own thread", async () => {
    const threadId = await newThread()
    const otherThread = await newThread()
    const a = startStream(threadId, "never-ending")
    await a.until((events) => deltas(events) >= 1)
    const requestId = requestIdOf(a.events)
    const elsewhere = await client().get(`/api/threads/${otherThread}/stream/${requestId}`)
    expect(elsewhere.status).toBe(404)
    expect(elsewhere.json.error.code).toBe("request_not_found")
    await client().post(`/api/threads/cancel/${requestId}`)
    await a.done
  })

  it("a reconnect after completion is served in full", async () => {
    const threadId = await newThread()
    const first = startStream(threadId)
    await first.done
    const again = join(threadId, requestIdOf(first.events))
    await again.done
    expect(again.text()).toBe(first.text())
    expect(again.events.at(-1)!.event).toBe("done")
  })
})

describe("cancel", () => {
  it("one of two listeners cancels: the other still gets the full text and the reply completes", async () => {
    const threadId = await newThread()
    const a = startStream(threadId)
    await a.until((events) => deltas(events) >= 2)
    const requestId = requestIdOf(a.events)
    const b = join(threadId, requestId)
    await b.until((events) => deltas(events) >= 3)
    // b joined while a still listened: b is its own request on the same generation.
    expect(requestIdOf(b.events)).not.toBe(requestId)
    expect(b.events[1]!.data.generation_id).toBe(a.events[1]!.data.generation_id)
    const cancelled = await client().post(`/api/threads/cancel/${requestId}`)
    expect(cancelled.json).toEqual({ cancelled: true })
    await a.done
    expect(a.events.at(-1)!.event).toBe("cancelled")
    expect(terminal(a.events)).toHaveLength(1)
    await b.done
    expect(b.events.at(-1)!.event).toBe("done")
    expect(b.text()).toBe(mockReplyText(tokens))
    expect((await assistantOf(threadId)).status).toBe("complete")
  })

  it("the cancelled event has an id of its own: resuming from it misses nothing, and others never see it", async () => {
    const threadId = await newThread()
    const a = startStream(threadId)
    await a.until((events) => deltas(events) >= 2)
    const requestId = requestIdOf(a.events)
    const b = join(threadId, requestId)
    await b.until((events) => deltas(events) >= 3)
    await client().post(`/api/threads/cancel/${requestId}`)
    await a.done
    const cancelled = a.events.at(-1)!
    expect(cancelled.event).toBe("cancelled")
    // Its id is new: no event a's stream had before, and none the generation emits after it.
    expect(cancelled.id).toBeGreaterThan(a.events.at(-2)!.id)
    await b.done
    expect(b.events.map((e) => e.id)).not.toContain(cancelled.id)
    // a resumes from its cancelled event and gets exactly what came after it.
    const resumed = join(threadId, requestId, cancelled.id)
    await resumed.done
    const afterCancel = (events: ReadonlyArray<ParsedEvent>) =>
      events.filter((e) => e.id > cancelled.id).map((e) => [e.id, e.event, e.data.text])
    expect(afterCancel(resumed.events)).toEqual(afterCancel(b.events))
    expect(a.text() + resumed.text()).toBe(mockReplyText(tokens))
    expect(terminal(b.events).map((e) => e.event)).toEqual(["done"])
  })

  it("the last listener cancelling stops the generation and keeps the partial text as cancelled", async () => {
    const threadId = await newThread()
    const a = startStream(threadId, "never-ending")
    await a.until((events) => deltas(events) >= 3)
    const requestId = requestIdOf(a.events)
    const b = join(threadId, requestId)
    await b.until((events) => deltas(events) >= 4)
    await client().post(`/api/threads/cancel/${requestId}`)
    await a.done
    // b is still listening: the generation goes on.
    const before = deltas(b.events)
    await b.until((events) => deltas(events) >= before + 3)
    b.abort()
    await eventually(async () => (await assistantOf(threadId)).status === "cancelled")
    const assistant = await assistantOf(threadId)
    expect(assistant.content.length).toBeGreaterThanOrEqual(b.text().length)
    expect(assistant.content.startsWith(a.text())).toBe(true)
  })

  it("?scope=generation stops it for every listener", async () => {
    const threadId = await newThread()
    const a = startStream(threadId, "never-ending")
    await a.until((events) => deltas(events) >= 2)
    const requestId = requestIdOf(a.events)
    const b = join(threadId, requestId)
    await b.until((events) => deltas(events) >= 3)
    const cancelled = await client().post(`/api/threads/cancel/${requestId}?scope=generation`)
    expect(cancelled.json).toEqual({ cancelled: true })
    await Promise.all([a.done, b.done])
    expect(a.events.at(-1)!.event).toBe("cancelled")
    expect(b.events.at(-1)!.event).toBe("cancelled")
    expect(b.events.at(-1)!.id).toBe(a.events.at(-1)!.id)
    await eventually(async () => (await assistantOf(threadId)).status === "cancelled")
  })

  it("a client hanging up aborts the generation when it was the only listener", async () => {
    const threadId = await newThread()
    const a = startStream(threadId, "never-ending")
    await a.until((events) => deltas(events) >= 3)
    a.abort()
    await eventually(async () => (await assistantOf(threadId)).status === "cancelled")
    expect((await assistantOf(threadId)).content.startsWith(a.text())).toBe(true)
  })

  it("a non-streaming turn is a listener too: its client hanging up detaches it", async () => {
    const threadId = await newThread()
    const controller = new AbortController()
    const pending = fetch(`${gateway.baseUrl}/api/threads/${threadId}/messages`, {
      method: "POST",
      headers,
      body: body("never-ending"),
      signal: controller.signal,
    }).catch(() => undefined)
    await eventually(async () => (await assistantOf(threadId))?.status === "pending")
    await new Promise((resolve) => setTimeout(resolve, 100))
    controller.abort()
    await pending
    await eventually(async () => (await assistantOf(threadId)).status === "cancelled")
  })

  it("unknown request id → 404, another org's → 404, a finished one → cancelled:false", async () => {
    const unknown = await client().post(`/api/threads/cancel/${crypto.randomUUID()}`)
    expect(unknown.status).toBe(404)
    expect(unknown.json.error.code).toBe("request_not_found")

    const threadId = await newThread()
    const a = startStream(threadId, "never-ending")
    await a.until((events) => deltas(events) >= 1)
    const requestId = requestIdOf(a.events)
    const intruder = await api(gateway.baseUrl, "someone-else").post(`/api/threads/cancel/${requestId}`)
    expect(intruder.status).toBe(404)
    const rejoin = await api(gateway.baseUrl, "someone-else").get(
      `/api/threads/${threadId}/stream/${requestId}`,
    )
    expect(rejoin.status).toBe(404)
    await client().post(`/api/threads/cancel/${requestId}`)
    await a.done

    const finished = startStream(threadId)
    await finished.done
    const late = await client().post(`/api/threads/cancel/${requestIdOf(finished.events)}`)
    expect(late.json).toEqual({ cancelled: false })
  })
})
