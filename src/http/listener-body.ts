import { Readable } from "node:stream"
import type { RequestId } from "../domain/ids.ts"
import { firstGenerationFrameId, type Generation, type GenerationOutcome } from "../engine/generations.ts"
import { type Frame, type FrameSink, keepaliveFrame } from "../engine/sse-frames.ts"

/** How far (in bytes) a client may fall behind the live frames before it counts as slow. */
export const maxUnsentBytes = 1 << 20

/** How one reply format writes a generation's frames. */
export interface ListenerFormat {
  /** The bytes of one frame; undefined when the frame does not show in this format. */
  readonly encode: (f: Frame) => Uint8Array | undefined
  /** The last bytes a client dropped for falling behind gets; `lastId` is the last frame it got. */
  readonly fellBehind: (lastId: number) => Uint8Array
}

/** The generation's own end: after it, the outcome is known (a `cancelled` may be one request's). */
const isGenerationTerminal = (type: string | undefined) => type === "done" || type === "error"

/**
 * One request's reply stream, fed by its generation as frames are emitted and piped by the HTTP
 * server into the response: the frames of one upstream read cost an encode each and one socket
 * write together, with no queue or fiber hop.
 * However it ends, the request is recorded once: with the generation's outcome when the client got
 * the terminal frame, otherwise as detached, and then it is detached (which aborts the upstream call
 * when it was the last request on it). A client hanging up destroys the body, which ends it so.
 */
export class ListenerBody extends Readable implements FrameSink {
  private lastType: string | undefined
  private lastId: number
  private limit = maxUnsentBytes
  private finished = false
  /** Frames encoded since the last write: the events of one upstream read go out as one write. */
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0
  private readonly generation: Generation
  private readonly requestId: RequestId
  private readonly format: ListenerFormat
  private readonly onEnd: (outcome: GenerationOutcome | "detached") => void

  constructor(
    generation: Generation,
    requestId: RequestId,
    format: ListenerFormat,
    onEnd: (outcome: GenerationOutcome | "detached") => void,
    /** What the request writes before the generation's frames (its own ping and meta, a role chunk). */
    head: ReadonlyArray<Uint8Array>,
    afterId: number,
  ) {
    super()
    this.generation = generation
    this.requestId = requestId
    this.format = format
    this.onEnd = onEnd
    this.lastId = afterId
    for (const bytes of head) this.push(bytes)
  }

  // Frames are pushed as the generation emits them; there is nothing to fetch on demand.
  override _read() {}

  private write(f: Frame) {
    // A keepalive is no event: it moves neither the resume point nor the end.
    if (f !== keepaliveFrame) {
      this.lastType = f.type
      this.lastId = f.id
    }
    const bytes = this.format.encode(f)
    if (bytes === undefined) return
    if (this.pending.length === 0) queueMicrotask(this.flush)
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
  }

  private readonly flush = () => {
    const pending = this.pending
    if (pending.length === 0) return
    this.pending = []
    this.pendingBytes = 0
    if (!this.destroyed) this.push(pending.length === 1 ? pending[0] : Buffer.concat(pending))
  }

  replay(frames: ReadonlyArray<Frame>) {
    for (const f of frames) this.write(f)
    // What was already emitted does not count against the client.
    this.limit = this.readableLength + this.pendingBytes + maxUnsentBytes
    return true
  }

  offer(f: Frame) {
    if (this.finished) return true
    this.write(f)
    return this.readableLength + this.pendingBytes <= this.limit
  }

  end() {
    if (this.finished) return
    this.finished = true
    this.flush()
    this.push(null)
  }

  fellBehind(lastId: number) {
    if (this.finished) return
    this.flush()
    this.push(this.format.fellBehind(Math.max(lastId, this.lastId)))
    this.end()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    this.finished = true
    const outcome =
      this.readableEnded && isGenerationTerminal(this.lastType) ? this.generation.result() : undefined
    if (outcome !== undefined) this.onEnd(outcome)
    else {
      this.onEnd("detached")
      this.generation.detachUnsafe(this.requestId, this)
    }
    callback(error)
  }
}

/**
 * A request's reply body, subscribed to `generation`: `head` (the request's own first frames), then
 * the generation's frames after `afterId` (-1: all of them), replayed and then live.
 */
export const subscribeBody = (
  generation: Generation,
  requestId: RequestId,
  afterId: number,
  format: ListenerFormat,
  head: ReadonlyArray<Uint8Array>,
  onEnd: (outcome: GenerationOutcome | "detached") => void,
): ListenerBody => {
  const body = new ListenerBody(generation, requestId, format, onEnd, head, afterId)
  // The generation's own frames start after the request's head frames.
  generation.subscribe(requestId, Math.max(afterId, firstGenerationFrameId - 1), body)
  return body
}
