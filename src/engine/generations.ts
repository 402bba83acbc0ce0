import { Context, Deferred, Effect, Layer, Option, type Stream } from "effect"
import { AppConfig } from "../config.ts"
import type { ToolCall } from "../domain/content.ts"
import type {
  GenerationTimeout,
  GenerationTooLarge,
  PacerQueueFull,
  RelayedFailure,
  ShuttingDown,
  StoreUnavailable,
  ThreadNotFound,
} from "../domain/errors.ts"
import type { GenerationId, OrgId, RequestId, ThreadId } from "../domain/ids.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import type { Message, Usage } from "../domain/thread.ts"
import type { ProviderAdapter, ProviderRequest } from "../providers/provider.ts"
import { MessagesRepo } from "../store/messages-repo.ts"
import { tracedFn } from "../telemetry/spans.ts"
import { clockDeadlines } from "./deadlines.ts"
import type { SlowListener } from "./frame-hub.ts"
import { makeRun } from "./generation-run.ts"
import { LiveGeneration } from "./live-generation.ts"
import type { Ticket } from "./pacer.ts"
import { GenerationRelay, type RelayedTurn } from "./relay.ts"
import { ReplyProgress } from "./reply-progress.ts"
import type { Frame, FrameSink } from "./sse-frames.ts"
import type { QueuedTurn } from "./thread-actors.ts"
import { ThreadLocks } from "./thread-locks.ts"

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
  | ThreadNotFound
  | PacerQueueFull
  | RelayedFailure

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
  /** Its id, when it was chosen before the start (a coalescing claim shared with other replicas). */
  readonly generationId?: GenerationId | undefined
  readonly org: OrgId
  /**
   * The generation's place in its provider's pacer (taken once its thread's turn comes): the
   * upstream call waits for dispatch, and the slot is a resource of the call's scope.
   */
  readonly ticket: Ticket | Effect.Effect<Ticket, PacerQueueFull>
  readonly requestId: RequestId
  readonly adapter: ProviderAdapter
  /** What to send; for a thread turn its messages are the thread's history, read when its turn comes. */
  readonly request: ProviderRequest
  /** The thread turn it answers (its place on the thread, its stored messages); none for a stateless completion. */
  readonly turn?: QueuedTurn | undefined
  /** `performance.now()` when the request arrived: latency is measured from there. */
  readonly startedAt: number
  /** Shared with the other replicas (REDIS_URL): its frames relayed, its request ids found anywhere. */
  readonly relay?: RelayedTurn | undefined
  /** Called once with the outcome, as it is decided (before anyone awaiting it resumes). */
  readonly onSettled?: ((outcome: GenerationOutcome) => void) | undefined
}

/** How long a finished generation stays joinable from memory (then it is read from the store). */
export const finishedRetentionMs = 60_000

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
   * `sink`: a reconnect that took over the request id since is left alone. `hold`: the client can
   * reconnect (it asked for it), so a thread turn keeps running for it for `RECONNECT_GRACE_MS`.
   */
  readonly detachUnsafe: (requestId: RequestId, sink: FrameSink, hold?: boolean) => void
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
      const progress = yield* ReplyProgress
      const relay = yield* GenerationRelay
      const threadLocks = yield* ThreadLocks
      const config = yield* AppConfig
      const scope = yield* Effect.scope
      const byRequestId = new Map<RequestId, LiveGeneration>()
      const deadlines = yield* clockDeadlines
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

      const forget = (generation: LiveGeneration) => {
        generation.findable = false
        for (const requestId of generation.names) byRequestId.delete(requestId)
      }

      const run = makeRun({
        config,
        messages,
        progress,
        threadLocks,
        scope,
        settled: (generation) => {
          running.delete(generation)
          // A stored reply stays joinable from memory a while (late joiners, reconnects), then is
          // read from the store; a stateless completion has nothing to re-join.
          deadlines.after(generation.threadId === null ? 0 : finishedRetentionMs, () => forget(generation))
        },
      })

      const start = tracedFn("Generations.start")(
        Effect.fnUntraced(function* (spec: GenerationSpec) {
          const generation = new LiveGeneration(
            {
              id: spec.generationId,
              org: spec.org,
              threadId: spec.turn?.threadId ?? null,
              provider: spec.adapter.name,
              model: spec.request.model,
              requestId: spec.requestId,
            },
            config.reconnectGraceMs === 0
              ? undefined
              : (run) => deadlines.after(config.reconnectGraceMs, run),
          )
          byRequestId.set(spec.requestId, generation)
          running.add(generation)
          if (spec.relay !== undefined) relay.publish(generation, spec.relay)
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
