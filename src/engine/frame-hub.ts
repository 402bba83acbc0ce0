import { Cause, Effect, Queue, Schema, Stream } from "effect"
import type { RequestId } from "../domain/ids.ts"
import type { EventData, GenerationEventType } from "../domain/stream-event.ts"
import { type Frame, FrameLog, type FrameSink, frame, keepaliveFrame, requestFrame } from "./sse-frames.ts"

/**
 * Ids of the frames of one reply stream: 0 and 1 are the request's own `ping` and `meta`; the
 * generation's events (ttft meta, deltas, the terminal event) follow from 2, the same for everyone.
 */
export const firstGenerationFrameId = 2

/** How many frames one listener may have unsent before it counts as slow. */
export const listenerBuffer = 4096

/** A listener fell `listenerBuffer` frames behind: its stream ends, and it may resume from `lastId`. */
export class SlowListener extends Schema.TaggedError<SlowListener>()("SlowListener", {
  lastId: Schema.Number,
}) {}

const noListeners = new Map<RequestId, FrameSink>()

/**
 * A generation's frames and the streams that take them: the log every listener replays from, each
 * frame offered to every live stream as it is emitted, the slow-consumer rule (a stream that cannot
 * take a frame is dropped and told where to resume), and keepalives for quiet streams.
 *
 * Plain code rather than a `PubSub`: a frame is offered synchronously from the adapter's I/O
 * callback to each stream, no queue or fiber hop per token per listener, and a late joiner replays
 * from the shared log instead of a copy (see ARCHITECTURE.md for the measurement).
 */
export class FrameHub {
  private readonly log = new FrameLog()
  private nextId = firstGenerationFrameId
  /** When its listeners last got anything (a frame or a keepalive). */
  private lastSentAt = performance.now()
  // Swapped for the shared empty one once the generation settled (nothing joins after that): a
  // finished reply stays cached for the coalescer's result TTL.
  private listeners = new Map<RequestId, FrameSink>()
  /** Told of a stream dropped for falling behind (after it is gone from the listeners). */
  private readonly onDropped: (requestId: RequestId) => void
  /**
   * Given every frame as it enters the log (with REDIS_URL: the relay's copy for listeners on other
   * replicas, see engine/relay.ts); set before the first frame.
   */
  mirror: ((f: Frame) => void) | undefined
  /** Fed by `relay` (a copy of another replica's generation, set by `asRelayCopy`), never by `emit`. */
  relayed = false

  constructor(onDropped: (requestId: RequestId) => void) {
    this.onDropped = onDropped
  }

  /** Synchronous, so a listener registering between two emits sees each frame exactly once. */
  emit<T extends GenerationEventType>(type: T, data: EventData<T>) {
    this.deliver(frame(this.nextId++, type, data))
  }

  /**
   * A frame made elsewhere, with its id (a generation of another replica, read from its relay):
   * ids follow on from it. One request's own frame goes to that request only.
   */
  relay(f: Frame) {
    this.nextId = f.id + 1
    if (f.only === undefined) return this.deliver(f)
    this.log.push(f)
    this.listeners.get(f.only as RequestId)?.offer(f)
  }

  private deliver(f: Frame) {
    this.lastSentAt = performance.now()
    this.log.push(f)
    this.mirror?.(f)
    for (const [requestId, sink] of this.listeners) {
      if (!sink.offer(f)) {
        this.listeners.delete(requestId)
        this.onDropped(requestId)
        sink.fellBehind(f.id - 1)
      }
    }
  }

  /** One request's own frame (its `cancelled`): in the log with an id of its own, offered to it only. */
  emitTo(requestId: RequestId, type: "cancelled") {
    const sink = this.listeners.get(requestId)
    if (sink === undefined) return
    // A copy of another replica's generation keeps that one's ids: its own frame takes the next id
    // for this stream alone, and stays out of the log (the next relayed frame has that id).
    if (this.relayed) return void sink.offer(requestFrame(this.nextId, type, requestId))
    const own = requestFrame(this.nextId++, type, requestId)
    this.log.push(own)
    this.mirror?.(own)
    sink.offer(own)
  }

  /** Ends every stream (after the terminal frame). */
  endAll() {
    for (const sink of this.listeners.values()) sink.end()
    this.listeners.clear()
  }

  /** Sends a keepalive to every listener when nothing went to them for `quietMs`. */
  keepalive(now: number, quietMs: number) {
    if (this.listeners.size === 0 || now - this.lastSentAt < quietMs) return
    this.lastSentAt = now
    // A listener too far behind to take it is caught by the next real frame.
    for (const sink of this.listeners.values()) sink.offer(keepaliveFrame)
  }

  /**
   * Replays the log after `afterId` into `sink` and, unless `ended`, makes it live: in one
   * synchronous step, so no emit falls between them. "behind" when the replay did not fit.
   */
  join(requestId: RequestId, afterId: number, sink: FrameSink, ended: boolean): "live" | "ended" | "behind" {
    if (!sink.replay(this.log, afterId)) {
      sink.fellBehind(afterId)
      return "behind"
    }
    if (ended) {
      sink.end()
      return "ended"
    }
    this.listeners.set(requestId, sink)
    return "live"
  }

  /** Ends and forgets the request's stream (only `only`, when given: a reconnect that took over stays). */
  remove(requestId: RequestId, only?: FrameSink) {
    const sink = this.listeners.get(requestId)
    if (sink !== undefined && (only === undefined || sink === only)) {
      this.listeners.delete(requestId)
      sink.end()
    }
  }

  /** The log's frames after `afterId`, own frames of requests included. */
  framesAfter(afterId: number) {
    return this.log.after(afterId)
  }

  has(requestId: RequestId) {
    return this.listeners.has(requestId)
  }

  get size() {
    return this.listeners.size
  }

  /** The id of the last event emitted: where a client resumes from. */
  lastEventId() {
    return this.nextId - 1
  }

  /** The generation settled: nothing more joins or is emitted; the log is kept, compacted. */
  close() {
    this.listeners = noListeners
    this.log.compact()
  }

  /** `join` as a Stream (in-process listeners): it fails when `listenerBuffer` frames wait. */
  listen(
    requestId: RequestId,
    afterId: number,
    join: (requestId: RequestId, afterId: number, sink: FrameSink) => void,
  ): Stream.Stream<Frame, SlowListener> {
    return Stream.unwrap(
      Effect.flatMap(
        // Room for the whole replay plus the live buffer.
        Effect.suspend(() =>
          Queue.bounded<Frame, SlowListener | Cause.Done>(this.log.length + listenerBuffer),
        ),
        (queue) =>
          Effect.sync(() => {
            join(requestId, afterId, {
              replay: () =>
                Queue.offerAllUnsafe(
                  queue,
                  this.log.after(afterId).filter((f) => f.only === undefined || f.only === requestId),
                ).length === 0,
              offer: (f) => Queue.offerUnsafe(queue, f),
              end: () => Queue.endUnsafe(queue),
              fellBehind: (lastId) => Queue.failCauseUnsafe(queue, Cause.fail(new SlowListener({ lastId }))),
            })
            return Stream.fromQueue(queue)
          }),
      ),
    )
  }
}
