import {
  Cause,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Schedule,
  Schema,
  Stream,
} from "effect"
import { AppConfig } from "../config.ts"
import type { ToolCall } from "../domain/content.ts"
import { GenerationTimeout, GenerationTooLarge, ShuttingDown, StoreUnavailable } from "../domain/errors.ts"
import {
  type GenerationId,
  newGenerationId,
  newMessageId,
  type OrgId,
  type RequestId,
  type ThreadId,
} from "../domain/ids.ts"
import { type ProviderError, UpstreamError } from "../domain/provider-errors.ts"
import { Message, type Usage } from "../domain/thread.ts"
import type { ProviderAdapter, ProviderRequest } from "../providers/provider.ts"
import { type FinishTurn, MessagesRepo, withOutcome } from "../store/messages-repo.ts"
import { tracedFn, withPerCallSpan } from "../telemetry/spans.ts"
import { makeDeadlines } from "./deadlines.ts"
import type { Ticket } from "./pacer.ts"
import { type Frame, FrameLog, type FrameSink, frame, keepaliveFrame, requestFrame } from "./sse-frames.ts"
import { ToolCallAccumulator } from "./tool-calls.ts"

/** Node's timers take at most 2^31-1 ms; a longer delay would fire at once. */
const maxTimerMs = 2 ** 31 - 1

const providerErrorTags = new Set([
  "RateLimited",
  "Unauthorized",
  "BadRequest",
  "Overloaded",
  "UpstreamError",
  "Timeout",
  "NetworkError",
  "StreamFailed",
])
const isProviderError = (error: GenerationError | undefined): error is ProviderError =>
  error !== undefined && providerErrorTags.has(error._tag)

/**
 * What a generation failed with: its typed error, or for a defect an `upstream_error` (the cause is
 * logged); undefined when it was interrupted (cancelled).
 */
const failureOf = (cause: Cause.Cause<GenerationError>, provider: string): GenerationError | undefined => {
  const error = Cause.findErrorOption(cause).pipe(Option.getOrUndefined)
  if (error !== undefined) return error
  return Cause.hasDies(cause)
    ? new UpstreamError({ provider, message: `the call to ${provider} failed` })
    : undefined
}

/** The reply of a stateless completion, shaped like a stored one (it is never written). */
const transientReply = (outcome: FinishTurn): Message => {
  const now = new Date().toISOString()
  return new Message(
    {
      message_id: newMessageId(),
      thread_id: "00000000-0000-0000-0000-000000000000" as ThreadId,
      role: "assistant",
      content: outcome.content,
      status: outcome.status,
      provider: null,
      model: null,
      usage: outcome.usage,
      finish_reason: outcome.finishReason,
      error_code: outcome.errorCode,
      request_id: null,
      created_at: now,
      updated_at: now,
    },
    { disableChecks: true },
  )
}

/** Where the time of a request went. */
export interface Timings {
  readonly ttftMs: number | null
  readonly latencyMs: number
  readonly queueWaitMs: number
}

/**
 * Why a generation failed: its provider, one of its bounds, or the store that could not take its
 * reply (then the reply is not stored: it is written as failed once the store answers again).
 */
export type GenerationError =
  | ProviderError
  | GenerationTimeout
  | GenerationTooLarge
  | StoreUnavailable
  | ShuttingDown

/** How a generation ended; the assistant message is persisted in that state (or will be, see above). */
export type GenerationOutcome = Timings &
  (
    | {
        readonly _tag: "Completed"
        readonly message: Message
        readonly usage: Usage | null
        /** The tool calls the reply made, in order; undefined when it made none. */
        readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
      }
    | { readonly _tag: "Failed"; readonly message: Message; readonly error: GenerationError }
    | { readonly _tag: "Cancelled"; readonly message: Message }
  )

export interface GenerationSpec {
  readonly org: OrgId
  /** The generation's place in its provider's pacer: the upstream call waits for dispatch. */
  readonly ticket: Ticket
  readonly requestId: RequestId
  readonly adapter: ProviderAdapter
  readonly request: ProviderRequest
  /** The `pending` assistant message this generation fills in. */
  readonly assistantMessage: Message | undefined
  /** `performance.now()` when the request arrived: latency is measured from there. */
  readonly startedAt: number
  /** Called once with the outcome, as it is decided (before anyone awaiting it resumes). */
  readonly onSettled?: ((outcome: GenerationOutcome) => void) | undefined
}

/** A listener fell `listenerBuffer` frames behind: its stream ends, and it may resume from `lastId`. */
export class SlowListener extends Schema.TaggedError<SlowListener>()("SlowListener", {
  lastId: Schema.Number,
}) {}

/**
 * Ids of the frames of one reply stream: 0 and 1 are the request's own `ping` and `meta`; the
 * generation's events (ttft meta, deltas, the terminal event) follow from 2, the same for everyone.
 */
export const firstGenerationFrameId = 2

/** How long a finished generation stays joinable from memory (then it is read from the store). */
export const finishedRetentionMs = 60_000

/** The final write of a reply is tried this often, `finalWriteBackoffMs` apart and doubling, before its listeners are told. */
const finalWriteAttempts = 3
const finalWriteBackoffMs = 100

/** After that, the reply is written as failed in the background, once a second for a minute at most. */
const repairSchedule = { schedule: Schedule.spaced("1 second"), times: 60 }

/** PostgreSQL's text cannot hold U+0000: a reply's is shown and stored as U+FFFD, the same for both. */
const storableText = (text: string) => (text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text)

/** How many frames one listener may have unsent before it counts as slow. */
export const listenerBuffer = 4096

/**
 * One upstream call and everything it produces. Its fiber lives in the Generations scope, not in
 * the scope of the request that started it: requests attach and detach, and only when the last
 * one detaches is the fiber interrupted (which aborts the upstream request).
 */
export interface Generation {
  readonly id: GenerationId
  readonly org: OrgId
  /** The thread whose reply it writes; null for a stateless completion. */
  readonly threadId: ThreadId | null
  readonly provider: string
  readonly model: string
  /** Whether the terminal frame has been emitted. */
  readonly isEnded: () => boolean
  readonly outcome: Deferred.Deferred<GenerationOutcome>
  /** Every request id that names this generation (the leader's, then followers'). */
  readonly names: Array<RequestId>
  /** Whether a stream is open for this request right now. */
  readonly isListening: (requestId: RequestId) => boolean
  /** How many streams it feeds now (`MAX_LISTENERS_PER_GENERATION` bounds it). */
  readonly listenerCount: () => number
  /** Counts a request that waits for the outcome (a non-streaming turn). */
  readonly attach: (requestId: RequestId) => void
  /**
   * Attaches a listener: `sink` gets every frame after `afterId` (replayed from the log) and then
   * each live frame as it is emitted, with no gap and no duplicate, until the terminal frame.
   */
  readonly subscribe: (requestId: RequestId, afterId: number, sink: FrameSink) => void
  /** `subscribe` as a Stream (for in-process listeners): it fails when `listenerBuffer` frames wait. */
  readonly listen: (requestId: RequestId, afterId: number) => Stream.Stream<Frame, SlowListener>
  /** How it ended, once its terminal frame is out (the same value `outcome` completes with). */
  readonly result: () => GenerationOutcome | undefined
  /** Stops counting the request; interrupts the generation when no request is left. */
  readonly detach: (requestId: RequestId) => Effect.Effect<void>
  /**
   * `detach` from outside any fiber (the interruption starts and is not awaited), by the listener
   * `sink`: a reconnect that took over the request id since is left alone.
   */
  readonly detachUnsafe: (requestId: RequestId, sink: FrameSink) => void
  /** Ends one request's stream with `cancelled` and detaches it. */
  readonly cancelRequest: (requestId: RequestId) => Effect.Effect<void>
  /** Stops the generation for every listener. */
  readonly cancel: Effect.Effect<void>
}

export class Generations extends Context.Service<
  Generations,
  {
    readonly start: (spec: GenerationSpec) => Effect.Effect<Generation>
    /** The live generation a request follows (a finished one is found through its stored message). */
    readonly byRequest: (requestId: RequestId) => Option.Option<Generation>
    /** Makes `requestId` another name for a generation it follows (coalesced followers). */
    readonly alias: (requestId: RequestId, generation: Generation) => void
    /**
     * Stops for a shutdown: every generation only streams listen to ends at once, one a request
     * waits for may finish within `graceMs`; each is then stopped, its text stored as
     * `interrupted` and its listeners told `shutting_down` (retryable). Done when all settled.
     */
    readonly drain: (graceMs: number) => Effect.Effect<void>
  }
>()("dac/engine/Generations") {
  static readonly layer = Layer.effect(
    Generations,
    Effect.gen(function* () {
      const messages = yield* MessagesRepo
      const config = yield* AppConfig
      const scope = yield* Effect.scope
      const byRequestId = new Map<RequestId, LiveGeneration>()
      const deadlines = makeDeadlines()
      // One timer walks the running generations and keeps their quiet streams open: no keepalive
      // ticker merged into each listener's stream (a queue hop per frame per listener).
      const running = new Set<LiveGeneration>()
      const keepalives = setInterval(
        () => {
          const now = performance.now()
          for (const generation of running) generation.keepalive(now, config.sseKeepaliveMs)
        },
        Math.min(1000, config.sseKeepaliveMs),
      )
      keepalives.unref()
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          deadlines.clear()
          clearInterval(keepalives)
        }),
      )

      // A stored turn's reply is written back; a stateless completion's exists only in memory. A
      // failed write is tried again a few times; then (whatever failed, a defect too) it is left
      // unwritten (undefined) and the generation still ends for every listener.
      const finish = (stored: Message | undefined, outcome: FinishTurn) =>
        stored === undefined
          ? Effect.succeed<Message | undefined>(transientReply(outcome))
          : messages.finishTurn(stored, outcome).pipe(
              Effect.retry({
                schedule: Schedule.exponential(finalWriteBackoffMs),
                times: finalWriteAttempts - 1,
              }),
              Effect.catchCause(() => Effect.succeed(undefined)),
            )

      /** Writes, in the background, a reply the store could not take: as failed, once it answers. */
      const repair = (stored: Message, outcome: FinishTurn) =>
        messages.finishTurn(stored, outcome).pipe(
          Effect.retry(repairSchedule),
          Effect.andThen(Effect.logInfo("stored a reply the store could not take at first")),
          Effect.catchCause(() =>
            Effect.logError("a reply could not be stored; the next start-up marks it interrupted"),
          ),
          Effect.annotateLogs({ message_id: stored.message_id }),
          Effect.forkIn(scope),
        )

      const forget = (generation: LiveGeneration) => {
        generation.findable = false
        for (const requestId of generation.names) byRequestId.delete(requestId)
      }

      /** Waits for the pacer, calls upstream, feeds `generation`, and settles it however that ends. */
      const run = (spec: GenerationSpec, generation: LiveGeneration) => {
        // Joined once at the end: `+=` per token would keep a rope of one node per token alive with
        // the reply (it is retained for the coalescer's result TTL).
        const parts: Array<string> = []
        let replyBytes = 0
        let ttftMs: number | null = null
        let queueWaitMs = 0
        let usage: Usage | null = null
        let finishReason: string | null = null
        const toolCalls = new ToolCallAccumulator()

        // Each event arrives synchronously from the adapter's I/O callback: no fiber hop per token.
        const upstream = spec.adapter
          .run(spec.request, (event) => {
            switch (event._tag) {
              case "FirstByte":
                ttftMs = performance.now() - spec.startedAt
                generation.emit("meta", { ttft_ms: ttftMs })
                break
              case "RateLimitHint":
                spec.ticket.pause(event.pauseMs)
                break
              case "TextDelta": {
                if (generation.stopping) break
                const text = storableText(event.text)
                replyBytes += Buffer.byteLength(text)
                if (replyBytes > config.generationMaxBytes) {
                  generation.stop(
                    new GenerationTooLarge({
                      message: `the reply grew past ${config.generationMaxBytes} bytes (GENERATION_MAX_BYTES)`,
                    }),
                  )
                  break
                }
                parts.push(text)
                generation.emit("delta", { text })
                break
              }
              case "ToolCallDelta":
                if (generation.stopping) break
                generation.emit("tool_call", toolCalls.add(event))
                break
              case "Finish":
                finishReason = event.reason
                usage = event.usage
                break
            }
          })
          .pipe(
            Effect.andThen(
              Effect.suspend(() =>
                Effect.annotateCurrentSpan({
                  "gen_ai.response.finish_reasons": [finishReason],
                  "gen_ai.usage.input_tokens": usage?.input_tokens,
                  "gen_ai.usage.output_tokens": usage?.output_tokens,
                }),
              ),
            ),
          )
        // Waits for the pacer, then calls upstream; the slot goes back however the call ends. A
        // bound reached (time, size) stops the generation: its fiber is interrupted, which aborts the
        // upstream request, and it ends with that bound's error, its text so far kept. (No race per
        // call: interrupting the fiber it already has costs nothing until a bound is reached.)
        const genAi = {
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": spec.adapter.name,
          "gen_ai.request.model": spec.request.model,
        }
        const consume = Effect.flatMap(
          spec.ticket.dispatched.pipe(withPerCallSpan("pacer.wait", genAi)),
          (waited) => {
            queueWaitMs = waited
            const timer = setTimeout(
              () =>
                generation.stop(
                  new GenerationTimeout({
                    message: `the reply took longer than ${config.generationMaxMs} ms (GENERATION_MAX_MS)`,
                  }),
                ),
              Math.min(config.generationMaxMs, maxTimerMs),
            )
            return upstream.pipe(
              Effect.onExit((exit) =>
                Effect.sync(() => {
                  clearTimeout(timer)
                  const error = Exit.isFailure(exit)
                    ? Cause.findErrorOption(exit.cause).pipe(Option.getOrUndefined)
                    : undefined
                  spec.ticket.release(isProviderError(error) ? error : undefined)
                }),
              ),
            )
          },
        ).pipe(
          Effect.onInterrupt(() => Effect.sync(spec.ticket.abandon)),
          withPerCallSpan("generation", { ...genAi, "dac.request_id": spec.requestId }),
        )

        // Runs once however the generation ends (done, failed, interrupted, a defect), uninterruptibly:
        // every listener gets exactly one terminal frame, and the assistant message never stays
        // `pending` while the process lives and the store answers.
        const settle = (exit: Exit.Exit<void, GenerationError>) =>
          Effect.gen(function* () {
            const latencyMs = performance.now() - spec.startedAt
            const timings = { ttftMs, latencyMs, queueWaitMs }
            const error = Exit.isSuccess(exit)
              ? undefined
              : generation.stopping !== undefined && Cause.hasInterruptsOnly(exit.cause)
                ? generation.stopping
                : failureOf(exit.cause, spec.adapter.name)
            if (error?._tag === "UpstreamError" && !Exit.isSuccess(exit) && Cause.hasDies(exit.cause)) {
              yield* Effect.logError("generation failed with a defect", exit.cause)
            }
            const outcome: FinishTurn = Exit.isSuccess(exit)
              ? {
                  content: parts.join(""),
                  status: "complete",
                  usage,
                  finishReason: finishReason ?? "stop",
                  errorCode: null,
                }
              : {
                  content: parts.join(""),
                  // A reply cut off by a shutdown is `interrupted`, as one a crash cut off.
                  status: error?._tag === "ShuttingDown" ? "interrupted" : error ? "failed" : "cancelled",
                  usage,
                  finishReason: null,
                  errorCode: error?.code ?? null,
                }
            const message = yield* finish(spec.assistantMessage, outcome)
            let result: GenerationOutcome
            if (message === undefined) {
              // The store did not take the reply: every listener learns it now (retryable), and the
              // reply is written as failed, with its text, once the store answers again.
              const failed: FinishTurn = {
                ...outcome,
                status: "failed",
                finishReason: null,
                errorCode: "store_unavailable",
              }
              yield* repair(spec.assistantMessage!, failed)
              const storeError = new StoreUnavailable({
                message: "the reply could not be stored: the store is unavailable; try again",
              })
              result = {
                _tag: "Failed",
                // As the store will have it once it answers again.
                message: withOutcome(spec.assistantMessage!, failed, new Date().toISOString()),
                error: storeError,
                ...timings,
              }
              yield* Effect.logWarning("reply not stored", { code: storeError.code })
              generation.end(result, "error", {
                code: storeError.code,
                message: storeError.message,
                retryable: true,
              })
            } else if (outcome.status === "complete") {
              result = { _tag: "Completed", message, usage, toolCalls: toolCalls.result(), ...timings }
              yield* Effect.logDebug("reply complete", { ttft_ms: ttftMs, latency_ms: latencyMs })
              generation.end(result, "done", {
                message_id: message.message_id,
                finish_reason: message.finish_reason,
                usage,
                latency_ms: latencyMs,
                queue_wait_ms: queueWaitMs,
              })
            } else if (error) {
              yield* Effect.logWarning("upstream failed", {
                provider: spec.adapter.name,
                code: error.code,
                error: error.message,
                // The transport's own words (addresses, ports): for the log only, never the client.
                ...("detail" in error && error.detail !== undefined ? { detail: error.detail } : {}),
              })
              result = { _tag: "Failed", message, error, ...timings }
              generation.end(result, "error", {
                code: error.code,
                message: error.message,
                retryable: error.retryable,
              })
            } else {
              result = { _tag: "Cancelled", message, ...timings }
              generation.end(result, "cancelled", {})
            }
            generation.settled()
            running.delete(generation)
            spec.onSettled?.(result)
            yield* Deferred.succeed(generation.outcome, result)
            // A stored reply stays joinable from memory a while (late joiners, reconnects), then is
            // read from the store; a stateless completion has nothing to re-join.
            deadlines.after(spec.assistantMessage === undefined ? 0 : finishedRetentionMs, () =>
              forget(generation),
            )
          })

        return consume.pipe(Effect.onExit(settle))
      }

      const start = tracedFn("Generations.start")(
        Effect.fnUntraced(function* (spec: GenerationSpec) {
          const generation = new LiveGeneration(
            spec,
            config.reconnectGraceMs === 0
              ? undefined
              : (run) => deadlines.after(config.reconnectGraceMs, run),
          )
          byRequestId.set(spec.requestId, generation)
          running.add(generation)
          const fiber = yield* run(spec, generation).pipe(Effect.forkIn(scope, { startImmediately: true }))
          if (!generation.isEnded()) {
            generation.fiber = fiber
            if (generation.stopping !== undefined) fiber.interruptUnsafe()
          }
          return generation
        }),
      )

      const drain = Effect.fn("Generations.drain")(function* (graceMs: number) {
        const live = [...running]
        for (const generation of live) if (!generation.isAwaited()) generation.shutDown()
        const settled = (generation: LiveGeneration) => Deferred.await(generation.outcome)
        yield* Effect.forEach(live, settled, { concurrency: "unbounded", discard: true }).pipe(
          Effect.timeoutOrElse({
            duration: graceMs,
            orElse: () =>
              Effect.sync(() => {
                for (const generation of running) generation.shutDown()
              }),
          }),
        )
        // Whatever is still running (started during the grace, or being stopped) settles now.
        for (const generation of running) generation.shutDown()
        yield* Effect.forEach([...running, ...live], settled, { concurrency: "unbounded", discard: true })
      })

      return Generations.of({
        drain,
        start,
        byRequest: (requestId) => Option.fromNullishOr(byRequestId.get(requestId)),
        alias: (requestId, generation) => {
          generation.names.push(requestId)
          // Once forgotten, a generation is found through its stored message, under any name.
          if ((generation as LiveGeneration).findable)
            byRequestId.set(requestId, generation as LiveGeneration)
        },
      })
    }),
  )
}

const noRequests = new Set<RequestId>()
const noListeners = new Map<RequestId, FrameSink>()

/**
 * A generation's shared state: the frame log, the requests attached to it, its fiber while it
 * runs. What runs the upstream call lives in the fiber, not here, so once the generation ended
 * only this small object (with its compacted log and outcome) is kept for joiners.
 */
class LiveGeneration implements Generation {
  readonly id = newGenerationId()
  readonly org: OrgId
  readonly threadId: ThreadId | null
  readonly provider: string
  readonly model: string
  readonly outcome = Deferred.makeUnsafe<GenerationOutcome>()
  readonly names: Array<RequestId>
  /** Whether `byRequest` finds it (until its retention is over). */
  findable = true
  /** Why it was stopped other than by its requests (a bound, a shutdown): it ends with that error. */
  stopping: GenerationTimeout | GenerationTooLarge | ShuttingDown | undefined
  /** The fiber calling upstream; dropped once it ended. */
  fiber: Fiber.Fiber<void, GenerationError> | undefined
  private readonly log = new FrameLog()
  private nextId = firstGenerationFrameId
  /** How it ended, set as its terminal frame goes out: from then on it is ended. */
  private settledWith: GenerationOutcome | undefined
  /** When its listeners last got anything (a frame or a keepalive). */
  private lastSentAt = performance.now()
  // Both are swapped for the shared empty ones once the generation settled: nothing is added to
  // them after that (`subscribe` and `attach` check `ended`), and a finished reply stays cached for
  // the coalescer's result TTL, where two empty collections would be a sixth of what it keeps.
  private waiting = new Set<RequestId>()
  private listeners = new Map<RequestId, FrameSink>()
  /** Requests whose stream was dropped for falling behind, held for `RECONNECT_GRACE_MS`. */
  private reconnecting = new Set<RequestId>()
  /**
   * Runs its callback when a reconnect's grace is over; undefined when there is none. The client
   * was told to reconnect with `Last-Event-ID`: it should find the reply still going.
   */
  private readonly afterReconnectGrace: ((run: () => void) => void) | undefined

  constructor(spec: GenerationSpec, afterReconnectGrace: ((run: () => void) => void) | undefined) {
    this.afterReconnectGrace = afterReconnectGrace
    this.org = spec.org
    this.threadId = spec.assistantMessage?.thread_id ?? null
    this.provider = spec.adapter.name
    this.model = spec.request.model
    this.names = [spec.requestId]
  }

  /** Synchronous, so a listener registering between two emits sees each frame exactly once. */
  emit(type: string, data: Readonly<Record<string, unknown>>) {
    const f = frame(this.nextId++, type, data)
    this.lastSentAt = performance.now()
    this.log.push(f)
    for (const [requestId, sink] of this.listeners) {
      if (!sink.offer(f)) {
        this.listeners.delete(requestId)
        this.holdForReconnect(requestId)
        sink.fellBehind(f.id - 1)
      }
    }
  }

  /** Emits the terminal frame, `outcome` already known to `result()`, and ends every listener. */
  end(
    outcome: GenerationOutcome,
    type: "done" | "error" | "cancelled",
    data: Readonly<Record<string, unknown>>,
  ) {
    this.settledWith = outcome
    this.emit(type, data)
    for (const sink of this.listeners.values()) sink.end()
    this.listeners.clear()
  }

  /**
   * Keeps the generation running for a request whose stream was dropped for falling behind, until it
   * reconnects or its grace is over. Only a running thread turn: a stateless one cannot be
   * re-attached, and a finished one is found as it ended.
   */
  private holdForReconnect(requestId: RequestId) {
    if (this.afterReconnectGrace === undefined || this.threadId === null || this.ended) return
    this.reconnecting.add(requestId)
    this.afterReconnectGrace(() => {
      if (this.reconnecting.delete(requestId)) this.abandoned()?.interruptUnsafe()
    })
  }

  /** The fiber to interrupt when no request is left on a running generation. */
  private abandoned() {
    return this.waiting.size === 0 && this.listeners.size === 0 && this.reconnecting.size === 0 && !this.ended
      ? this.fiber
      : undefined
  }

  /** Sends a keepalive to every listener when nothing went to them for `quietMs`. */
  keepalive(now: number, quietMs: number) {
    if (this.ended || this.listeners.size === 0 || now - this.lastSentAt < quietMs) return
    this.lastSentAt = now
    // A listener too far behind to take it is caught by the next real frame.
    for (const sink of this.listeners.values()) sink.offer(keepaliveFrame)
  }

  /** The terminal frame is out: nothing more is emitted, and nothing is left to interrupt. */
  settled() {
    this.fiber = undefined
    this.waiting = noRequests
    this.listeners = noListeners
    this.reconnecting = noRequests
    this.log.compact()
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
    if (!this.ended) this.waiting.add(requestId)
  }

  isListening(requestId: RequestId) {
    return this.listeners.has(requestId)
  }

  listenerCount() {
    return this.listeners.size
  }

  /** Whether a request waits for its whole reply (a shutdown gives those a grace to finish). */
  isAwaited() {
    return this.waiting.size > 0
  }

  /** The id of the last event emitted: where a client resumes from. */
  lastEventId() {
    return this.nextId - 1
  }

  /** Stops it with `reason` (once): its fiber is interrupted, and it ends with that error. */
  stop(reason: GenerationTimeout | GenerationTooLarge | ShuttingDown) {
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
    // Replay and registration in one synchronous step: no emit can fall between them.
    if (!sink.replay(this.log, afterId)) sink.fellBehind(afterId)
    else if (this.ended) sink.end()
    else {
      // A reconnect takes its request over from the hold, and a stream over from its request's wait
      // (Turns.start counts every request as waiting): from now on its stream counts.
      this.reconnecting.delete(requestId)
      this.waiting.delete(requestId)
      this.listeners.set(requestId, sink)
    }
  }

  listen(requestId: RequestId, afterId: number): Stream.Stream<Frame, SlowListener> {
    return Stream.unwrap(
      Effect.flatMap(
        // Room for the whole replay plus the live buffer.
        Effect.suspend(() =>
          Queue.bounded<Frame, SlowListener | Cause.Done>(this.log.length + listenerBuffer),
        ),
        (queue) =>
          Effect.sync(() => {
            this.subscribe(requestId, afterId, {
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

  /**
   * Forgets the request (its listener `only`); the fiber to interrupt when it was the last one. A
   * stream's own end (`only`) leaves a reconnect hold in place; an explicit detach (cancel) ends it.
   */
  private leave(requestId: RequestId, only?: FrameSink) {
    this.waiting.delete(requestId)
    if (only === undefined) this.reconnecting.delete(requestId)
    const sink = this.listeners.get(requestId)
    if (sink !== undefined && (only === undefined || sink === only)) {
      this.listeners.delete(requestId)
      sink.end()
    }
    return this.abandoned()
  }

  detach(requestId: RequestId): Effect.Effect<void> {
    return Effect.suspend(() => {
      const fiber = this.leave(requestId)
      return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
    })
  }

  detachUnsafe(requestId: RequestId, sink: FrameSink) {
    this.leave(requestId, sink)?.interruptUnsafe()
  }

  cancelRequest(requestId: RequestId): Effect.Effect<void> {
    return Effect.suspend(() => {
      // Its stream ends with `cancelled`, an event of its own in the log (ids there are
      // consecutive); detaching then ends it like any other.
      const sink = this.listeners.get(requestId)
      if (sink !== undefined) {
        const cancelled = requestFrame(this.nextId++, "cancelled", requestId)
        this.log.push(cancelled)
        sink.offer(cancelled)
      }
      return this.detach(requestId)
    })
  }

  get cancel(): Effect.Effect<void> {
    return Effect.suspend(() => (this.fiber === undefined ? Effect.void : Fiber.interrupt(this.fiber)))
  }
}
