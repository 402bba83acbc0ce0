import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { applyEvent, emptyReply, type Reply } from "../../web/src/reply.ts"
import { readEventStream, type StreamEvent } from "../../web/src/sse.ts"

const sse = (events: ReadonlyArray<{ id: number; event: string; data: unknown }>) =>
  events.map((e) => `id: ${e.id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`).join("")

const stream = (text: string, cuts: ReadonlyArray<number>) => {
  const bytes = new TextEncoder().encode(text)
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let start = 0
  for (const point of [...points, bytes.length]) {
    if (point > start) chunks.push(bytes.slice(start, point))
    start = Math.max(start, point)
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk)
      controller.close()
    },
  })
}

const reply = [
  { id: 0, event: "ping", data: { type: "ping" } },
  {
    id: 1,
    event: "meta",
    data: {
      type: "meta",
      request_id: "r1",
      generation_id: "g1",
      provider: "mock",
      model: "m",
      coalesce: "leader",
    },
  },
  { id: 2, event: "meta", data: { type: "meta", ttft_ms: 12.5 } },
  { id: 3, event: "delta", data: { type: "delta", text: "Hé" } },
  { id: 4, event: "delta", data: { type: "delta", text: "llo 🌍" } },
  { id: 5, event: "done", data: { type: "done", message_id: "m1", finish_reason: "stop", latency_ms: 40 } },
]

const collect = async (body: ReadableStream<Uint8Array>) => {
  const events: StreamEvent[] = []
  await readEventStream(body, (e) => events.push(e))
  return events
}

describe("readEventStream", () => {
  it("gives the same events however the bytes are split (inside UTF-8 characters too)", async () => {
    const text = `: keepalive\n\n${sse(reply)}`
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 20 }), async (cuts) => {
        const events = await collect(stream(text, cuts))
        expect(events.map((e) => [e.id, e.event])).toEqual(reply.map((e) => [e.id, e.event]))
        expect(events[4]!.data.text).toBe("llo 🌍")
      }),
      { numRuns: 100 },
    )
  })

  it("drops an event cut off by the end of the stream", async () => {
    const events = await collect(stream(`${sse(reply.slice(0, 3))}id: 3\nevent: delta\ndata: {"te`, []))
    expect(events.map((e) => e.id)).toEqual([0, 1, 2])
  })
})

const fold = (events: ReadonlyArray<StreamEvent>, start: Reply = emptyReply, reconnected = false) =>
  events.reduce((r, e) => applyEvent(r, e, reconnected), start)

describe("applyEvent", () => {
  it("builds the reply: text, role, TTFT and latency", () => {
    const r = fold(reply)
    expect(r).toMatchObject({
      requestId: "r1",
      coalesce: "leader",
      ttftMs: 12.5,
      latencyMs: 40,
      text: "Héllo 🌍",
      status: "complete",
      lastId: 5,
    })
  })

  it("a re-attach's replay adds no duplicate and keeps the first role", () => {
    const partial = fold(reply.slice(0, 4))
    const again = [
      { id: 0, event: "ping", data: {} },
      { id: 1, event: "meta", data: { request_id: "r1", generation_id: "g1", coalesce: "follower" } },
      ...reply.slice(2),
    ]
    const r = fold(again, partial, true)
    expect(r).toMatchObject({ text: "Héllo 🌍", status: "complete", coalesce: "leader" })
  })

  it("a stored reply's whole text replaces what was shown", () => {
    const partial = fold(reply.slice(0, 4))
    const stored = [
      { id: 1, event: "meta", data: { request_id: "r1", coalesce: "leader" } },
      { id: 2, event: "delta", data: { text: "Héllo 🌍" } },
      { id: 3, event: "done", data: { latency_ms: 40 } },
    ]
    const r = fold(stored, { ...partial, lastId: 1 }, true)
    expect(r).toMatchObject({ text: "Héllo 🌍", status: "complete" })
  })

  it("a slow_consumer end is no end: the reply waits for the reconnect, after the last generation event", () => {
    const partial = fold(reply.slice(0, 4))
    const r = applyEvent(partial, { id: 4, event: "error", data: { code: "slow_consumer", retryable: true } })
    expect(r).toBe(partial)
    expect(r.lastId).toBe(3)
  })

  it("ends once: cancelled and error keep the partial text; nothing after the end applies", () => {
    const cancelled = fold([...reply.slice(0, 4), { id: 4, event: "cancelled", data: {} }, reply[4]!])
    expect(cancelled).toMatchObject({ text: "Hé", status: "cancelled" })
    const failed = fold([
      ...reply.slice(0, 4),
      { id: 4, event: "error", data: { code: "upstream_error", message: "boom", retryable: true } },
    ])
    expect(failed).toMatchObject({
      text: "Hé",
      status: "failed",
      error: { code: "upstream_error", retryable: true },
    })
  })
})
