import { Writable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { describe, expect, it } from "vitest"
import type { MessageId, RequestId } from "../../src/domain/ids.ts"
import type { Generation, GenerationOutcome } from "../../src/engine/generations.ts"
import { type Frame, FrameLog, type FrameSink, frame } from "../../src/engine/sse-frames.ts"
import { ListenerBody, type ListenerFormat, maxUnsentBytes } from "../../src/http/listener-body.ts"
import { BytesBody, slowConsumerCloseMs } from "../../src/http/watched-body.ts"

/** A generation's `done` (the fields do not matter here). */
const doneFrame = (id: number) =>
  frame(id, "done", { message_id: "m" as MessageId, finish_reason: "stop", usage: null, latency_ms: 1 })

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

/** STALLED_WRITE_TIMEOUT_MS of the bodies that are not about it. */
const stalledMs = 30_000

const logOf = (frames: ReadonlyArray<Frame>) => {
  const log = new FrameLog()
  for (const f of frames) log.push(f)
  return log
}

/**
 * A response whose client reads nothing: it takes the first write and never finishes it, as a
 * socket whose peer stopped reading. `socket.destroy` closes it, as the connection's end does.
 */
const stuckResponse = () => {
  let closed = 0
  const response = new Writable({ write: () => {} })
  const socket = {
    destroy: () => {
      closed++
      response.destroy()
    },
  }
  // A ServerResponse's inactivity timeout: nothing completes here, so it fires after `ms`.
  const setTimeoutOf = (ms: number, callback: () => void) => setTimeout(callback, ms).unref()
  Object.assign(response, { socket, setTimeout: setTimeoutOf })
  return { response, closed: () => closed }
}

const until = async (done: () => boolean, ms = 3_000) => {
  const deadline = performance.now() + ms
  while (!done() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  return done()
}

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
      stalledMs,
    )
    const log = logOf([delta(2, "a"), frame(3, "meta", { ttft_ms: 1 })])
    expect(body.replay(log, 1)).toBe(true)
    // Emitted while it replays: the generation logs a frame, then offers it.
    for (const f of [delta(4, "b"), doneFrame(5)]) {
      log.push(f)
      expect(body.offer(f)).toBe(true)
    }
    body.end()
    const text = await read(body)
    expect(text.startsWith("h\n")).toBe(true)
    expect(text.indexOf('"text":"a"')).toBeLessThan(text.indexOf('"text":"b"'))
    expect(text).not.toContain("ttft_ms")
    expect(text).toContain("event: done")
    expect(ends).toEqual([outcome])
    expect(detached).toEqual([])
  })

  it("refuses frames once the client holds too much it was not able to take, then tells it where to resume; the request is detached", async () => {
    const { generation, detached } = generationStub()
    const ends: Array<unknown> = []
    const body = new ListenerBody(generation, requestId, format, (o) => ends.push(o), [], 1, stalledMs)
    expect(body.replay(logOf([delta(2, "x".repeat(1000))]), 1)).toBe(true)
    // Live once the replay was taken.
    await new Promise((resolve) => body.once("data", resolve))
    body.pause()
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

  it("what it replays counts: a long replay is read from the shared log as the client takes it, not copied", async () => {
    // A 4 MiB reply, finished and compacted (as a reconnect finds it), and one still being written.
    const frames = Array.from({ length: 1024 }, (_, i) => delta(2 + i, "z".repeat(4096)))
    const compacted = logOf([...frames, doneFrame(2 + frames.length)])
    compacted.compact()
    for (const log of [logOf(frames), compacted]) {
      // 200 re-attaches whose clients read nothing.
      const bodies = Array.from({ length: 200 }, () => {
        const { generation } = generationStub()
        const body = new ListenerBody(generation, requestId, format, () => {}, [], 1, stalledMs)
        body.replay(log, 1)
        const { response } = stuckResponse()
        pipeline(body, response).catch(() => {})
        return { body, response }
      })
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setImmediate(resolve))
      const held = bodies.map(({ body, response }) => body.unsentBytes + response.writableLength)
      const perListener = Math.max(...held)
      // A chunk or two each (the response's and the body's), not the 4 MiB reply: 200 × 4 MiB before.
      expect(perListener).toBeLessThan(128 * 1024)
      expect(held.reduce((a, b) => a + b, 0)).toBeLessThan(200 * 128 * 1024)
      for (const { body } of bodies) body.destroy()
    }
  })

  it("a write the client takes nothing of for the stalled-write timeout closes its connection and detaches it", async () => {
    const { generation, detached } = generationStub()
    const ends: Array<unknown> = []
    const body = new ListenerBody(generation, requestId, format, (o) => ends.push(o), [], 1, 100)
    const { response, closed } = stuckResponse()
    pipeline(body, response).catch(() => {})
    // Live, under its budget: only the stall ends it.
    let id = 2
    for (; id < 40; id++) expect(body.offer(delta(id, "w".repeat(1024)))).toBe(true)
    expect(await until(() => closed() > 0)).toBe(true)
    expect(await until(() => ends.length > 0)).toBe(true)
    expect(ends).toEqual(["detached"])
    expect(detached).toEqual([body])
  })

  it("a client dropped as slow has its connection closed soon after its last frame", async () => {
    const { generation, detached } = generationStub()
    const body = new ListenerBody(generation, requestId, format, () => {}, [], 1, stalledMs)
    const { response, closed } = stuckResponse()
    pipeline(body, response).catch(() => {})
    let id = 2
    while (body.offer(delta(id, "s".repeat(64 * 1024)))) id++
    body.fellBehind(id - 1)
    expect(closed()).toBe(0)
    // Within the grace, not the 30 s stalled-write timeout.
    expect(await until(() => closed() > 0, slowConsumerCloseMs + 2_000)).toBe(true)
    expect(await until(() => detached.length > 0)).toBe(true)
  })

  it("a stored reply its client reads nothing of closes its connection after the stalled-write timeout", async () => {
    const body = new BytesBody(new Uint8Array(256 * 1024), 100)
    const { response, closed } = stuckResponse()
    pipeline(body, response).catch(() => {})
    expect(await until(() => closed() > 0)).toBe(true)
  })

  it("frames offered together (the events of one upstream read) go out as one chunk", async () => {
    const { generation } = generationStub({ _tag: "Completed" } as GenerationOutcome)
    const body = new ListenerBody(generation, requestId, format, () => {}, [], 1, stalledMs)
    const chunks: Array<string> = []
    body.on("data", (chunk: Buffer) => chunks.push(chunk.toString()))
    body.offer(delta(2, "a"))
    body.offer(delta(3, "b"))
    body.offer(delta(4, "c"))
    await new Promise((resolve) => setImmediate(resolve))
    body.offer(delta(5, "d"))
    body.offer(doneFrame(6))
    body.end()
    await new Promise((resolve) => body.on("end", resolve))
    expect(chunks).toHaveLength(2)
    expect(chunks[0]).toMatch(/"a".*"b".*"c"/s)
    expect(chunks[1]).toMatch(/"d".*event: done/s)
  })

  it("a client that hangs up before the terminal frame is recorded as detached and detached", () => {
    const { generation, detached } = generationStub({ _tag: "Completed" } as GenerationOutcome)
    const ends: Array<unknown> = []
    const body = new ListenerBody(generation, requestId, format, (o) => ends.push(o), [], 1, stalledMs)
    body.offer(delta(2, "a"))
    body.destroy()
    // Frames after the hang-up are dropped quietly.
    expect(body.offer(delta(3, "b"))).toBe(true)
    body.end()
    expect(ends).toEqual(["detached"])
    expect(detached).toEqual([body])
  })
})
