import { Deferred, Effect, Fiber, type Stream } from "effect"
import {
  type GenerationTimeout,
  type GenerationTooLarge,
  ShuttingDown,
  type StoreUnavailable,
  type ThreadNotFound,
} from "../domain/errors.ts"
import {
  type GenerationId,
  newGenerationId,
  type OrgId,
  type RequestId,
  type ThreadId,
} from "../domain/ids.ts"
import type { EventData, GenerationEventType } from "../domain/stream-event.ts"
import { Attachments } from "./attachments.ts"
import { FrameHub, type SlowListener } from "./frame-hub.ts"
import type { Generation, GenerationError, GenerationOutcome } from "./generations.ts"
import type { Frame, FrameSink } from "./sse-frames.ts"

/**
 * Why a generation is stopped other than by its requests: a bound, a shutdown, or its turn's
 * messages that could not be stored. It ends with that error.
 */
export type StopReason =
  | GenerationTimeout
  | GenerationTooLarge
  | ShuttingDown
  | StoreUnavailable
  | ThreadNotFound

/** Who a generation is: what its `meta` frame and the lookups by request need. */
export interface GenerationIdentity {
  /** Given for a generation another replica runs (its relay copy here keeps its id). */
  readonly id?: GenerationId | undefined
  readonly org: OrgId
  readonly threadId: ThreadId | null
  readonly provider: string
  readonly model: string
  /** The request that started it. */
  readonly requestId: RequestId
}

/**
 * A running (or recently finished) generation: its frame hub, its attachments, and its fiber while
 * it runs. What runs the upstream call lives in the fiber (generation-run.ts), not here, so once it
 * ended only this small object (with its compacted log and outcome) is kept for joiners.
 */
export class LiveGeneration implements Generation {
  readonly id: GenerationId
  readonly org: OrgId
  readonly threadId: ThreadId | null
  readonly provider: string
  readonly model: string
  readonly outcome = Deferred.makeUnsafe<GenerationOutcome>()
  readonly names: Array<RequestId>
  /** Whether `byRequest` finds it (until its retention is over). */
  findable = true
  /** Why it was stopped other than by its requests (a bound, a shutdown): it ends with that error. */
  stopping: StopReason | undefined
  /** The fiber calling upstream; dropped once it ended. */
  fiber: Fiber.Fiber<void, GenerationError> | undefined
  /** How it ended, set as its terminal frame goes out: from then on it is ended. */
  private settledWith: GenerationOutcome | undefined
  private readonly hub: FrameHub
  private readonly attachments: Attachments

  constructor(identity: GenerationIdentity, afterReconnectGrace: ((run: () => void) => void) | undefined) {
    this.id = identity.id ?? newGenerationId()
    this.org = identity.org
    this.threadId = identity.threadId
    this.provider = identity.provider
    this.model = identity.model
    this.names = [identity.requestId]
    // Only a running thread turn is held for a reconnect: a stateless one cannot be re-attached,
    // and a finished one is found as it ended.
    this.hub = new FrameHub((requestId) => {
      if (!this.ended) this.attachments.holdForReconnect(requestId)
    })
    this.attachments = new Attachments(
      this.hub,
      this.threadId === null ? undefined : afterReconnectGrace,
      () => this.abandoned()?.interruptUnsafe(),
    )
  }

  emit<T extends GenerationEventType>(type: T, data: EventData<T>) {
    this.hub.emit(type, data)
  }

  /** Emits the terminal frame, `outcome` already known to `result()`, and ends every listener. */
  end<T extends "done" | "error" | "cancelled">(outcome: GenerationOutcome, type: T, data: EventData<T>) {
    this.settledWith = outcome
    this.hub.emit(type, data)
    this.hub.endAll()
  }

  /** Every frame, as it enters the log, also goes to `mirror` (the relay, engine/relay.ts). */
  mirrorTo(mirror: (f: Frame) => void) {
    this.hub.mirror = mirror
  }

  /** Makes this the copy of a generation another replica runs: fed by `relayFrame` only. */
  asRelayCopy() {
    this.hub.relayed = true
    return this
  }

  /** Its frames after `afterId`, in order (what a relay writes for a replica that starts following it). */
  framesAfter(afterId: number) {
    return this.hub.framesAfter(afterId)
  }

  /** A frame of the generation another replica runs, read from its relay (ids as they were there). */
  relayFrame(f: Frame) {
    if (!this.ended) this.hub.relay(f)
  }

  /** Its terminal frame, read from the relay: `outcome` is how it ended there. */
  relayEnd(outcome: GenerationOutcome, f: Frame) {
    if (this.ended) return
    this.settledWith = outcome
    this.hub.relay(f)
    this.hub.endAll()
  }

  /** Replica `replica` has listeners on it until `until` (epoch ms) unless it renews. */
  holdRemote(replica: string, until: number) {
    if (!this.ended) this.attachments.holdRemote(replica, until)
  }

  /** Replica `replica` has none left (or stopped renewing): interrupts when nobody else is left. */
  releaseRemote(replica: string) {
    if (!this.ended && this.attachments.releaseRemote(replica)) this.abandoned()?.interruptUnsafe()
  }

  expireRemote(now: number) {
    if (!this.ended && this.attachments.expireRemote(now)) this.abandoned()?.interruptUnsafe()
  }

  /** The fiber to interrupt when no request is left on a running generation. */
  private abandoned() {
    return !this.ended && this.attachments.isAbandoned() ? this.fiber : undefined
  }

  keepalive(now: number, quietMs: number) {
    if (!this.ended) this.hub.keepalive(now, quietMs)
  }

  /** The terminal frame is out: nothing more is emitted, and nothing is left to interrupt. */
  settled() {
    this.fiber = undefined
    this.attachments.close()
    this.hub.close()
  }

  private get ended() {
    return this.settledWith !== undefined
  }

  isEnded() {
    return this.ended
  }

  result() {
    return this.settledWith
  }

  attach(requestId: RequestId) {
    // Once ended, there is nothing left to wait for (and no generation to keep alive).
    if (!this.ended) this.attachments.wait(requestId)
  }

  isListening(requestId: RequestId) {
    return this.hub.has(requestId)
  }

  listenerCount() {
    return this.hub.size
  }

  isAwaited() {
    return this.attachments.isAwaited()
  }

  lastEventId() {
    return this.hub.lastEventId()
  }

  /** Stops it with `reason` (once): its fiber is interrupted, and it ends with that error. */
  stop(reason: StopReason) {
    if (this.ended || this.stopping !== undefined) return
    this.stopping = reason
    // Before `start` has its fiber, `start` interrupts it as soon as it does.
    this.fiber?.interruptUnsafe()
  }

  /** Stops it for a shutdown (see `Generations.drain`). */
  shutDown() {
    this.stop(
      new ShuttingDown({
        message: `the gateway is shutting down; reconnect with Last-Event-ID: ${this.lastEventId()} to get the reply so far`,
      }),
    )
  }

  subscribe(requestId: RequestId, afterId: number, sink: FrameSink) {
    if (this.hub.join(requestId, afterId, sink, this.ended) === "live") this.attachments.listening(requestId)
  }

  listen(requestId: RequestId, afterId: number): Stream.Stream<Frame, SlowListener> {
    return this.hub.listen(requestId, afterId, (id, after, sink) => this.subscribe(id, after, sink))
  }

  /**
   * Forgets the request (its stream `only`; `hold`ing it for a reconnect); the fiber to interrupt
   * when it was the last one.
   */
  private leave(requestId: RequestId, only?: FrameSink, hold = false) {
    if (hold && only !== undefined && this.hub.has(requestId) && !this.ended) {
      this.attachments.holdForReconnect(requestId)
    }
    this.hub.remove(requestId, only)
    this.attachments.leave(requestId, only !== undefined)
    return this.abandoned()
  }

  detach(requestId: RequestId): Effect.Effect<void> {
    return Effect.suspend(() => {
      const fiber = this.leave(requestId)
      return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
    })
  }

  detachUnsafe(requestId: RequestId, sink: FrameSink, hold = false) {
    this.leave(requestId, sink, hold)?.interruptUnsafe()
  }

  cancelRequest(requestId: RequestId): Effect.Effect<void> {
    return Effect.suspend(() => {
      // Its stream ends with `cancelled`, an event of its own in the log (ids there are
      // consecutive); detaching then ends it like any other.
      this.hub.emitTo(requestId, "cancelled")
      return this.detach(requestId)
    })
  }

  get cancel(): Effect.Effect<void> {
    return Effect.suspend(() => (this.fiber === undefined ? Effect.void : Fiber.interrupt(this.fiber)))
  }
}
