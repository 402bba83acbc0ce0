import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { MessageId } from "../../src/domain/ids.ts"
import type { EventData } from "../../src/domain/stream-event.ts"
import { firstGenerationFrameId } from "../../src/engine/frame-hub.ts"
import { type Frame, FrameLog, frame } from "../../src/engine/sse-frames.ts"

const decoder = new TextDecoder()

/** What a reader can observe of a frame; `bytes` decoded so a mismatch reads as text. */
const view = (frames: ReadonlyArray<Frame>) =>
  frames.map((f) => ({ id: f.id, type: f.type, data: f.data, bytes: decoder.decode(f.bytes) }))

type Terminal = "done" | "error" | "cancelled"

interface Shape {
  readonly start: number
  readonly meta: boolean
  readonly deltas: ReadonlyArray<string>
  readonly terminal: Terminal | null
}

const terminalData: { [T in Terminal]: EventData<T> } = {
  done: {
    message_id: "msg_1" as MessageId,
    finish_reason: "stop",
    usage: { input_tokens: 3, output_tokens: 7 },
    latency_ms: 12.5,
    queue_wait_ms: 0,
  },
  error: { code: "upstream_error", message: "boom — 失敗 💥", retryable: true },
  cancelled: {},
}

const terminalFrame = (id: number, terminal: Terminal) =>
  terminal === "done"
    ? frame(id, "done", terminalData.done)
    : terminal === "error"
      ? frame(id, "error", terminalData.error)
      : frame(id, "cancelled", terminalData.cancelled)

/** A generation's frames, ids consecutive from `start`, as `Generations` emits them. */
const framesOf = ({ start, meta, deltas, terminal }: Shape): Array<Frame> => {
  let id = start
  const frames: Array<Frame> = []
  if (meta) frames.push(frame(id++, "meta", { ttft_ms: 41.25 }))
  for (const text of deltas) frames.push(frame(id++, "delta", { text }))
  if (terminal !== null) frames.push(terminalFrame(id++, terminal))
  return frames
}

const logOf = (frames: ReadonlyArray<Frame>) => {
  const log = new FrameLog()
  for (const f of frames) log.push(f)
  return log
}

/** Peeks at the private state only to know which read path a test exercised. */
const isFolded = (log: FrameLog) => (log as unknown as { folded: unknown }).folded !== undefined

/** What a listener reads with a cursor: `at(id)` from `afterId + 1` up to `end`. */
const readByCursor = (log: FrameLog, afterId: number) => {
  const out: Array<Frame> = []
  for (let id = afterId + 1; id < log.end; id++) {
    const f = log.at(id)
    if (f !== undefined) out.push(f)
  }
  return out
}

/** `after(n)` for every n from (first id − 2) to (last id + 1); a cursor reads the same. */
const readAll = (log: FrameLog, frames: ReadonlyArray<Frame>) => {
  const first = frames[0]?.id ?? 0
  const last = frames.at(-1)?.id ?? 0
  const reads: Array<{ afterId: number; frames: ReturnType<typeof view> }> = []
  for (let afterId = first - 2; afterId <= last + 1; afterId++) {
    const read = view(log.after(afterId))
    expect(view(readByCursor(log, afterId))).toEqual(read)
    reads.push({ afterId, frames: read })
  }
  if (frames.length > 0) expect(log.end).toBe(last + 1)
  return reads
}

/** The reference: the frames pushed, filtered by id. */
const expectedReads = (frames: ReadonlyArray<Frame>) => {
  const first = frames[0]?.id ?? 0
  const last = frames.at(-1)?.id ?? 0
  const reads: Array<{ afterId: number; frames: ReturnType<typeof view> }> = []
  for (let afterId = first - 2; afterId <= last + 1; afterId++)
    reads.push({ afterId, frames: view(frames.filter((f) => f.id > afterId)) })
  return reads
}

/**
 * Pushes `frames`, reads every `after(n)`, compacts, reads again (twice, and after a second
 * `compact()`): every read must be the same as the frames pushed, filtered by id.
 */
const checkCompactionInvisible = (frames: ReadonlyArray<Frame>) => {
  const expected = expectedReads(frames)
  const log = logOf(frames)
  expect(log.length).toBe(frames.length)
  expect(readAll(log, frames)).toEqual(expected)

  log.compact()
  expect(log.length).toBe(frames.length)
  expect(readAll(log, frames)).toEqual(expected)
  expect(readAll(log, frames)).toEqual(expected) // reading does not consume anything

  log.compact()
  expect(log.length).toBe(frames.length)
  expect(readAll(log, frames)).toEqual(expected)
  return log
}

/** The same, but compacting before anything was read (no `bytes` cached on the pushed frames). */
const checkCompactionInvisibleUnread = (frames: ReadonlyArray<Frame>) => {
  const log = logOf(frames)
  log.compact()
  expect(log.length).toBe(frames.length)
  expect(readAll(log, frames)).toEqual(expectedReads(frames))
  return log
}

describe("FrameLog: compaction is invisible to readers", () => {
  describe("meta (ttft) + N deltas + done", () => {
    for (const n of [0, 1, 2, 3, 10, 200]) {
      it(`N = ${n}`, () => {
        const frames = framesOf({
          start: firstGenerationFrameId,
          meta: true,
          deltas: Array.from({ length: n }, (_, i) => (i === 0 ? "Hello" : ` token${i}`)),
          terminal: "done",
        })
        const log = checkCompactionInvisible(frames)
        expect(isFolded(log)).toBe(n > 0)
        checkCompactionInvisibleUnread(frames)
      })
    }
  })

  it("no meta + deltas + error", () => {
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: false,
      deltas: ["The", " capital", " of", " France"],
      terminal: "error",
    })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
    checkCompactionInvisibleUnread(frames)
  })

  it("meta + deltas + cancelled", () => {
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: true,
      deltas: ["partial", " repl"],
      terminal: "cancelled",
    })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
  })

  for (const terminal of ["done", "error", "cancelled"] as const) {
    it(`only a terminal frame (${terminal})`, () => {
      const frames = framesOf({ start: firstGenerationFrameId, meta: false, deltas: [], terminal })
      const log = checkCompactionInvisible(frames)
      expect(isFolded(log)).toBe(false)
      expect(view(log.after(firstGenerationFrameId - 1))).toEqual(view(frames))
    })
  }

  it("meta + done, no delta at all", () => {
    const frames = framesOf({ start: firstGenerationFrameId, meta: true, deltas: [], terminal: "done" })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(false)
  })

  it("deltas only (no terminal frame yet)", () => {
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: false,
      deltas: ["a", "b", "c"],
      terminal: null,
    })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
  })

  it("an empty log", () => {
    const log = new FrameLog()
    expect(log.length).toBe(0)
    for (const afterId of [-3, 0, 1, 2, 100]) expect(log.after(afterId)).toEqual([])
    log.compact()
    log.compact()
    expect(log.length).toBe(0)
    for (const afterId of [-3, 0, 1, 2, 100]) expect(log.after(afterId)).toEqual([])
  })

  it("multi-byte UTF-8 (emoji, CJK, combining marks) and empty-string deltas", () => {
    const deltas = [
      "",
      "東京",
      "",
      "は",
      "👋🏽",
      "",
      "👨‍👩‍👧‍👦 family",
      "é", // e + combining acute
      "한국어",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
      '\u0000\n\r\t"\\',
      "",
      "",
    ]
    const frames = framesOf({ start: firstGenerationFrameId, meta: true, deltas, terminal: "done" })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
    checkCompactionInvisibleUnread(frames)
  })

  it("only empty-string deltas", () => {
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: true,
      deltas: ["", "", ""],
      terminal: "done",
    })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
  })

  it("a surrogate pair split across two deltas reads back as the same two halves", () => {
    const [high, low] = ["😀".charAt(0), "😀".charAt(1)]
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: false,
      deltas: ["a", high, low, "b", low, high],
      terminal: "done",
    })
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
  })

  for (const start of [-3, 0, 1, 2, 7, 100_000]) {
    it(`ids starting at ${start}`, () => {
      const frames = framesOf({ start, meta: true, deltas: ["x", "", "yz", "🙂"], terminal: "done" })
      expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
      checkCompactionInvisibleUnread(frames)
    })
  }

  it("reads far outside the id range", () => {
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: true,
      deltas: ["a", "b"],
      terminal: "done",
    })
    const log = logOf(frames)
    log.compact()
    expect(view(log.after(-1_000_000))).toEqual(view(frames))
    expect(view(log.after(Number.MIN_SAFE_INTEGER))).toEqual(view(frames))
    expect(log.after(1_000_000)).toEqual([])
  })
})

describe("FrameLog: deltas that are not consecutive ids (artificial)", () => {
  it("delta, meta, delta, done: left as it is and still reads back correctly", () => {
    const start = firstGenerationFrameId
    const frames = [
      frame(start, "delta", { text: "one" }),
      frame(start + 1, "meta", { ttft_ms: 3 }),
      frame(start + 2, "delta", { text: "two" }),
      frame(start + 3, "done", terminalData.done),
    ]
    const log = checkCompactionInvisible(frames)
    expect(isFolded(log)).toBe(false)
  })

  it("delta, delta, meta, delta, delta, error: left as it is", () => {
    const start = 10
    const frames = [
      frame(start, "delta", { text: "a" }),
      frame(start + 1, "delta", { text: "😀" }),
      frame(start + 2, "meta", { queue_position: 0 }),
      frame(start + 3, "delta", { text: "" }),
      frame(start + 4, "delta", { text: "漢" }),
      frame(start + 5, "error", terminalData.error),
    ]
    expect(isFolded(checkCompactionInvisible(frames))).toBe(false)
  })

  it("consecutive deltas with non-delta frames on both sides are folded", () => {
    const start = firstGenerationFrameId
    const frames = [
      frame(start, "meta", { ttft_ms: 1 }),
      frame(start + 1, "meta", { queue_position: 1 }),
      frame(start + 2, "delta", { text: "x" }),
      frame(start + 3, "delta", { text: "y" }),
      frame(start + 4, "meta", { queue_position: 2 }),
      frame(start + 5, "done", terminalData.done),
    ]
    expect(isFolded(checkCompactionInvisible(frames))).toBe(true)
  })
})

describe("FrameLog: before compaction", () => {
  it("after(n) is the frames with an id above n, while frames are still pushed", () => {
    const frames = framesOf({
      start: firstGenerationFrameId,
      meta: true,
      deltas: ["a", "b", "c"],
      terminal: "done",
    })
    const log = new FrameLog()
    frames.forEach((f, i) => {
      log.push(f)
      const pushed = frames.slice(0, i + 1)
      expect(log.length).toBe(pushed.length)
      expect(readAll(log, pushed)).toEqual(expectedReads(pushed))
    })
  })
})

describe("FrameLog: compaction is invisible (property)", () => {
  /** Single UTF-16 code units: lone surrogates included. */
  const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
  const deltaText = fc.oneof(
    fc.constant(""),
    fc.string({ unit: "grapheme", maxLength: 8 }),
    fc.string({ unit: "binary", maxLength: 8 }),
    fc.string({ unit: codeUnit, maxLength: 4 }),
    fc.constantFrom("👋🏽", "東京", "한", "𝔘", "é", "\n", '"', "\\"),
  )
  const shape = fc.record({
    start: fc.oneof(fc.constant(firstGenerationFrameId), fc.integer({ min: -5, max: 1_000 })),
    meta: fc.boolean(),
    deltas: fc.array(deltaText, { maxLength: 40 }),
    terminal: fc.constantFrom<Terminal | null>("done", "error", "cancelled", null),
  })

  it("after(n) is the same before and after compact(), for every n, whatever the deltas", () => {
    fc.assert(
      fc.property(shape, (s) => {
        const frames = framesOf(s)
        const log = checkCompactionInvisible(frames)
        expect(isFolded(log)).toBe(s.deltas.length > 0)
      }),
      { numRuns: 200 },
    )
  })

  it("the same when compacted before anything was read", () => {
    fc.assert(
      fc.property(shape, (s) => {
        checkCompactionInvisibleUnread(framesOf(s))
      }),
      { numRuns: 200 },
    )
  })
})
