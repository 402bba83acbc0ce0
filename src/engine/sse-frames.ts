import type { EventData, StreamEvent } from "../domain/stream-event.ts"

const encoder = new TextEncoder()

/**
 * One SSE event. Its bytes are encoded once, the first time a listener asks, and then shared by
 * every listener: fan-out costs no encoding per listener, and a reply nobody streams (a
 * non-streaming or OpenAI-format listener) costs no SSE encoding at all.
 */
export interface Frame {
  readonly id: number
  readonly type: string
  /** The event's fields, for listeners that speak another format (the OpenAI-compatible endpoint). */
  readonly data: Readonly<Record<string, unknown>>
  readonly bytes: Uint8Array
  /** Set on a frame of one request's stream only (see `requestFrame`). */
  readonly only?: string
}

class LazyFrame implements Frame {
  readonly id: number
  readonly type: string
  readonly data: Readonly<Record<string, unknown>>
  private encoded: Uint8Array | undefined
  constructor(id: number, type: string, data: Readonly<Record<string, unknown>>) {
    this.id = id
    this.type = type
    this.data = data
  }
  get bytes(): Uint8Array {
    this.encoded ??= encoder.encode(
      `id: ${this.id}\nevent: ${this.type}\ndata: ${JSON.stringify({ type: this.type, ...this.data })}\n\n`,
    )
    return this.encoded
  }
}

/** One event of a reply stream (domain/stream-event.ts names them all and their fields). */
export const frame = <T extends StreamEvent["type"]>(id: number, type: T, data: EventData<T>): Frame =>
  new LazyFrame(id, type, data)

/** A frame of one request's stream only (its own `cancelled`): in the log, never replayed to others. */
class RequestFrame extends LazyFrame {
  readonly only: string
  constructor(id: number, type: string, only: string) {
    super(id, type, {})
    this.only = only
  }
}

/**
 * One request's own event, with an id of its own in the generation's sequence (so a resume from
 * it misses nothing); the other listeners never see it, and see a gap in the ids there.
 */
export const requestFrame = (id: number, type: string, requestId: string): Frame =>
  new RequestFrame(id, type, requestId)

/** A comment line: keeps proxies and idle timers from closing a quiet stream. */
export const keepaliveBytes = encoder.encode(": keepalive\n\n")

/**
 * Sent to the listeners of a generation that has been quiet for a while; not an event (no id, never
 * logged or replayed): every format writes it as the SSE comment above.
 */
export const keepaliveFrame: Frame = { id: -1, type: "keepalive", data: {}, bytes: keepaliveBytes }

/**
 * One listener of a generation, fed synchronously as frames are emitted (no queue, no fiber hop per
 * frame): an HTTP reply body encodes and writes each frame as it comes.
 */
export interface FrameSink {
  /**
   * The frames emitted before it joined: those of `log` after `afterId`. The log is the
   * generation's own, shared: a sink reads it as it can send, with no copy per joiner. False: too
   * many to take (it then `fellBehind`).
   */
  readonly replay: (log: FrameSource, afterId: number) => boolean
  /** A live frame; false: the listener is too far behind and is dropped (it then `fellBehind`). */
  readonly offer: (f: Frame) => boolean
  /** No more frames: the generation ended after its terminal frame, or the listener was detached. */
  readonly end: () => void
  /** Dropped for being too far behind; `lastId` is the last frame it was given. */
  readonly fellBehind: (lastId: number) => void
}

/** A generation's frames, read by id: what a listener replays from. */
export interface FrameSource {
  /** The id after the last frame (0 while there is none). */
  readonly end: number
  /** The frame with this id; undefined outside the log. */
  readonly at: (id: number) => Frame | undefined
}

/**
 * A generation's frames in id order (ids are consecutive from the first one pushed), for
 * replaying to late joiners and reconnects. Once the generation ended, `compact` folds the deltas
 * into one string and their boundaries: a finished reply is kept a while for joiners, and a few
 * hundred bytes per reply instead of an object per token keeps that retention cheap for the GC.
 */
export class FrameLog implements FrameSource {
  private frames: Array<Frame> = []
  private folded: FoldedDeltas | undefined
  /** The id of the first frame pushed; undefined while there is none. */
  private first: number | undefined

  push(f: Frame) {
    this.first ??= f.id
    this.frames.push(f)
  }

  get end() {
    return this.first === undefined ? 0 : this.first + this.length
  }

  /** O(1); a folded delta is made again (a small object), for the listener that reads it. */
  at(id: number): Frame | undefined {
    const first = this.first
    if (first === undefined || id < first) return undefined
    const folded = this.folded
    if (folded === undefined || id < folded.firstId) return this.frames[id - first]
    const i = id - folded.firstId
    if (i < folded.ends.length) {
      return frame(id, "delta", { text: folded.text.slice(folded.ends[i - 1] ?? 0, folded.ends[i]) })
    }
    // After the deltas: the frames kept after those before the deltas.
    return this.frames[folded.firstId - first + i - folded.ends.length]
  }

  /** The frames with an id above `afterId`, in order. */
  after(afterId: number): Array<Frame> {
    const folded = this.folded
    if (folded === undefined) {
      const first = this.frames[0]?.id ?? 0
      return this.frames.slice(Math.max(0, afterId - first + 1))
    }
    const out: Array<Frame> = []
    for (const f of this.frames) if (f.id < folded.firstId && f.id > afterId) out.push(f)
    for (let i = Math.max(0, afterId - folded.firstId + 1); i < folded.ends.length; i++) {
      out.push(
        frame(folded.firstId + i, "delta", {
          text: folded.text.slice(folded.ends[i - 1] ?? 0, folded.ends[i]),
        }),
      )
    }
    const lastId = folded.firstId + folded.ends.length - 1
    for (const f of this.frames) if (f.id > lastId && f.id > afterId) out.push(f)
    return out
  }

  get length() {
    return this.frames.length + (this.folded?.ends.length ?? 0)
  }

  /** Folds the deltas; call once no frame will be pushed any more. */
  compact() {
    if (this.folded !== undefined) return
    const deltas = this.frames.filter((f) => f.type === "delta")
    if (deltas.length === 0) return
    const firstId = deltas[0]!.id
    // Deltas are emitted back to back; anything else keeps the plain log.
    if (deltas.at(-1)!.id - firstId !== deltas.length - 1) return
    // One flat string and small integers: nothing per token for the GC to trace or copy.
    const texts = deltas.map((f) => String(f.data.text))
    const text = texts.join("")
    let end = 0
    const ends = texts.map((t) => {
      end += t.length
      return end
    })
    this.folded = { firstId, text, ends }
    this.frames = this.frames.filter((f) => f.type !== "delta")
  }
}

interface FoldedDeltas {
  readonly firstId: number
  readonly text: string
  /** `ends[i]`: where delta `firstId + i` ends in `text`. */
  readonly ends: ReadonlyArray<number>
}
