import type { RequestId } from "../domain/ids.ts"
import { firstGenerationFrameId } from "../engine/frame-hub.ts"
import type { Generation, GenerationOutcome } from "../engine/generations.ts"
import { type Frame, type FrameSink, type FrameSource, keepaliveFrame } from "../engine/sse-frames.ts"
import { WatchedBody } from "./watched-body.ts"

/**
 * How many bytes a client may have been handed but not yet taken (replayed or live) before it
 * counts as slow and is dropped.
 */
export const maxUnsentBytes = 1 << 20

/** A replay is handed over in chunks of about this size, as the socket takes them. */
const replayChunkBytes = 16 * 1024

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
 * One request's reply stream, fed by its generation and piped by the HTTP server into the response.
 *
 * Live frames are pushed as they are emitted: the frames of one upstream read cost an encode each
 * and one socket write together, with no queue or fiber hop. What was emitted before it joined is
 * not copied into it: it keeps a cursor into the generation's shared frame log and reads from it
 * in `_read`, as the socket drains, so 200 re-attaches that read nothing hold 200 cursors, not
 * 200 copies of the reply. Once the cursor reaches the end of the log it is live.
 *
 * Nothing wedges it: a client holding more than `maxUnsentBytes` it was handed is dropped with a
 * resumable `slow_consumer` frame and its connection closed soon after; a write that makes no
 * progress for the stalled-write timeout closes the connection (WatchedBody).
 *
 * However it ends, the request is recorded once: with the generation's outcome when the client got
 * the terminal frame, otherwise as detached, and then it is detached (which aborts the upstream call
 * when it was the last request on it). A client hanging up destroys the body, which ends it so.
 */
export class ListenerBody extends WatchedBody implements FrameSink {
  private lastType: string | undefined
  private lastId: number
  private finished = false
  /** Frames encoded since the last write: the events of one upstream read go out as one write. */
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0
  /** While replaying: the generation's log, read from `cursor` on. Undefined once live. */
  private log: FrameSource | undefined
  private cursor = 0
  /** Frames offered during the replay that are not in the log (a request's own `cancelled`). */
  private held: Array<Frame> | undefined
  /** `end` came during the replay: end once it is over. */
  private endAfterReplay = false
  private readonly generation: Generation
  private readonly requestId: RequestId
  private readonly format: ListenerFormat
  private readonly onEnd: (outcome: GenerationOutcome | "detached") => void
  /** A hang-up holds the request for a reconnect (`x-dac-on-disconnect: hold`) instead of leaving. */
  private readonly holdOnHangUp: boolean

  constructor(
    generation: Generation,
    requestId: RequestId,
    format: ListenerFormat,
    onEnd: (outcome: GenerationOutcome | "detached") => void,
    /** What the request writes before the generation's frames (its own ping and meta, a role chunk). */
    head: ReadonlyArray<Uint8Array>,
    afterId: number,
    /** STALLED_WRITE_TIMEOUT_MS: a write waiting this long for the client closes its connection. */
    stalledWriteMs: number,
    holdOnHangUp = false,
  ) {
    // A replay chunk at a time: what a client that reads nothing holds is about one chunk.
    super(stalledWriteMs, { highWaterMark: replayChunkBytes })
    this.generation = generation
    this.requestId = requestId
    this.format = format
    this.holdOnHangUp = holdOnHangUp
    this.onEnd = onEnd
    this.lastId = afterId
    for (const bytes of head) this.push(bytes)
  }

  /** The bytes handed to it and not yet taken by the response. */
  get unsentBytes() {
    return this.readableLength + this.pendingBytes
  }

  // Live frames are pushed as they come; the replay is read from the log as the socket drains.
  override _read() {
    if (this.log !== undefined) this.readLog(this.log)
  }

  /** Hands over the log's next frames, a chunk at a time, until the stream is full or caught up. */
  private readLog(log: FrameSource) {
    const parts: Array<Uint8Array> = []
    for (;;) {
      let bytes = 0
      while (this.cursor < log.end && bytes < replayChunkBytes) {
        const f = log.at(this.cursor++)
        // Another request's own event (its `cancelled`) is not this listener's.
        if (f === undefined || (f.only !== undefined && f.only !== this.requestId)) continue
        this.lastType = f.type
        this.lastId = f.id
        const encoded = this.format.encode(f)
        if (encoded === undefined) continue
        parts.push(encoded)
        bytes += encoded.length
      }
      const caughtUp = this.cursor >= log.end
      if (caughtUp) this.log = undefined
      const more = parts.length === 0 || this.push(parts.length === 1 ? parts[0] : Buffer.concat(parts))
      parts.length = 0
      if (caughtUp) return this.wentLive()
      if (!more || this.destroyed) return
    }
  }

  /** The replay is over: what came for it meanwhile goes out, then it is a live listener. */
  private wentLive() {
    const held = this.held
    this.held = undefined
    if (held !== undefined) for (const f of held) this.write(f)
    if (this.endAfterReplay) this.end()
  }

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

  replay(log: FrameSource, afterId: number) {
    // Nothing is read here: `_read` reads the log when the socket can take it.
    if (afterId + 1 < log.end) {
      this.log = log
      this.cursor = afterId + 1
      // Already asked for data (and given none): it will not ask again until it gets some.
      if (this.readableFlowing === true && this.readableLength === 0) this.readLog(log)
    }
    return true
  }

  offer(f: Frame) {
    if (this.finished) return true
    // A reconnect to another replica's generation may know a frame its copy here has not had
    // yet (the client got it first from that replica): it is not sent twice.
    if (f.id <= this.lastId && f !== keepaliveFrame) return true
    const log = this.log
    if (log !== undefined) {
      // Replaying: the log's frames are read from the log when their turn comes, a keepalive is
      // not needed by a client with bytes to read, and anything else waits for the end of the replay.
      if (f !== keepaliveFrame && log.at(f.id) !== f) {
        if (this.held === undefined) this.held = [f]
        else this.held.push(f)
      }
      return true
    }
    this.write(f)
    return this.readableLength + this.pendingBytes <= maxUnsentBytes
  }

  end() {
    if (this.finished && !this.endAfterReplay) return
    this.finished = true
    if (this.log !== undefined) {
      this.endAfterReplay = true
      return
    }
    this.endAfterReplay = false
    this.flush()
    this.push(null)
  }

  fellBehind(lastId: number) {
    if (this.finished) return
    this.flush()
    this.push(this.format.fellBehind(Math.max(lastId, this.lastId)))
    this.end()
    // It reads too slowly to be left holding a connection: bounded time to flush the last frame.
    this.closeAfterFlush()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    this.finished = true
    this.endAfterReplay = false
    this.log = undefined
    this.held = undefined
    const outcome =
      this.readableEnded && isGenerationTerminal(this.lastType) ? this.generation.result() : undefined
    if (outcome !== undefined) this.onEnd(outcome)
    else {
      this.onEnd("detached")
      this.generation.detachUnsafe(this.requestId, this, this.holdOnHangUp)
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
  stalledWriteMs: number,
  holdOnHangUp = false,
): ListenerBody => {
  const body = new ListenerBody(
    generation,
    requestId,
    format,
    onEnd,
    head,
    afterId,
    stalledWriteMs,
    holdOnHangUp,
  )
  // The generation's own frames start after the request's head frames.
  generation.subscribe(requestId, Math.max(afterId, firstGenerationFrameId - 1), body)
  return body
}
