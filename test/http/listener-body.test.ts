import { describe, expect, it } from "vitest"
import type { RequestId } from "../../src/domain/ids.ts"
import type { Generation, GenerationOutcome } from "../../src/engine/generations.ts"
import { type Frame, type FrameSink, frame } from "../../src/engine/sse-frames.ts"
import { ListenerBody, type ListenerFormat, maxUnsentBytes } from "../../src/http/listener-body.ts"

const requestId = "00000000-0000-4000-8000-000000000001" as RequestId
const decoder = new TextDecoder()

/** The two things a body asks of its generation: how it ended, and to let the request go. */
const generationStub = (outcome?: GenerationOutcome) => {
  const detached: Array<FrameSink> = []
  const generation = {
    result: () => outcome,
    detachUnsafe: (_: RequestId, sink: FrameSink) => {
      detached.push(sink)
    },
  } as unknown as Generation
  return { generation, detached }
}

const format: ListenerFormat = {
  encode: (f) => (f.type === "meta" ? undefined : f.bytes),
  fellBehind: (lastId) => new TextEncoder().encode(`slow after ${lastId}\n`),
}

const read = async (body: ListenerBody) => {
  let text = ""
  for await (const part of body) text += decoder.decode(part as Uint8Array)
  return text
}

const delta = (id: number, text: string): Frame => frame(id, "delta", { text })

describe("a reply body", () => {
  it("writes its head, the replay and live frames in order, skips what its format hides, and ends with the outcome", async () => {
    const outcome = { _tag: "Completed" } as GenerationOutcome
    const { generation, detached } = generationStub(outcome)
    const ends: Array<unknown> = []
    const body = new ListenerBody(
      generation,
      requestId,
      format,
      (o) => ends.push(o),
      [new Uint8Array([104, 10])],
      1,
    )
    expect(body.replay([delta(2, "a"), frame(3, "meta", { ttft_ms: 1 })])).toBe(true)
    expect(body.offer(delta(4, "b"))).toBe(true)
    expect(body.offer(frame(5, "done", {}))).toBe(true)
    body.end()
    const text = await read(body)
    expect(text.startsWith("h\n")).toBe(true)
    expect(text.indexOf('"text":"a"')).toBeLessThan(text.indexOf('"text":"b"'))
    expect(text).not.toContain("ttft_ms")
    expect(text).toContain("event: done")
    expect(ends).toEqual([outcome])
    expect(detached).toEqual([])
  })

  it("refuses frames once the client is too far behind, then tells it where to resume; the request is detached", async () => {
    const { generation, detached } = generationStub()
    const ends: Array<unknown> = []
    const body = new ListenerBody(generation, requestId, format, (o) => ends.push(o), [], 1)
    // What was emitted before it joined does not count against it.
    expect(body.replay([delta(2, "x".repeat(maxUnsentBytes))])).toBe(true)
    const chunk = "y".repeat(64 * 1024)
    let id = 3
    while (body.offer(delta(id, chunk))) id++
    expect((id - 3) * chunk.length).toBeGreaterThanOrEqual(maxUnsentBytes - chunk.length)
    // The frame that tipped it over was still written: the resume point is that frame.
    body.fellBehind(id - 1)
    const text = await read(body)
    expect(text.endsWith(`slow after ${id}\n`)).toBe(true)
    expect(ends).toEqual(["detached"])
    expect(detached).toEqual([body])
  })

  it("frames offered together (the events of one upstream read) go out as one chunk", async () => {
    const { generation } = generationStub({ _tag: "Completed" } as GenerationOutcome)
    const body = new ListenerBody(generation, requestId, format, () => {}, [], 1)
    const chunks: Array<string> = []
    body.on("data", (chunk: Buffer) => chunks.push(chunk.toString()))
    body.offer(delta(2, "a"))
    body.offer(delta(3, "b"))
    body.offer(delta(4, "c"))
    await new Promise((resolve) => setImmediate(resolve))
    body.offer(delta(5, "d"))
    body.offer(frame(6, "done", {}))
    body.end()
    await new Promise((resolve) => body.on("end", resolve))
    expect(chunks).toHaveLength(2)
    expect(chunks[0]).toMatch(/"a".*"b".*"c"/s)
    expect(chunks[1]).toMatch(/"d".*event: done/s)
  })

  it("a client that hangs up before the terminal frame is recorded as detached and detached", () => {
    const { generation, detached } = generationStub({ _tag: "Completed" } as GenerationOutcome)
    const ends: Array<unknown> = []
    const body = new ListenerBody(generation, requestId, format, (o) => ends.push(o), [], 1)
    body.offer(delta(2, "a"))
    body.destroy()
    // Frames after the hang-up are dropped quietly.
    expect(body.offer(delta(3, "b"))).toBe(true)
    body.end()
    expect(ends).toEqual(["detached"])
    expect(detached).toEqual([body])
  })
})
