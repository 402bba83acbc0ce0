import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Option, Queue, Schema, Stream } from "effect"
import {
  type GenerationId,
  newGenerationId,
  newMessageId,
  type OrgId,
  type RequestId,
  type ThreadId,
} from "../domain/ids.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import { Message, type Usage } from "../domain/thread.ts"
import type { ProviderAdapter, ProviderRequest } from "../providers/provider.ts"
import { type FinishTurn, MessagesRepo } from "../store/messages-repo.ts"
import type { Ticket } from "./pacer.ts"
import { type Frame, frame } from "./sse-frames.ts"

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

/** How a generation ended; the assistant message is already persisted in that state. */
export type GenerationOutcome = Timings &
  (
    | { readonly _tag: "Completed"; readonly message: Message; readonly usage: Usage | null }
    | { readonly _tag: "Failed"; readonly message: Message; readonly error: ProviderError }
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
  readonly provider: string
  readonly model: string
  /** Whether the terminal frame has been emitted. */
  readonly isEnded: () => boolean
  readonly outcome: Deferred.Deferred<GenerationOutcome>
  /** Every request id that names this generation (the leader's, then followers'). */
  readonly names: Array<RequestId>
  /** Whether a stream is open for this request right now. */
  readonly isListening: (requestId: RequestId) => boolean
  /** Counts a request that waits for the outcome (a non-streaming turn). */
  readonly attach: (requestId: RequestId) => void
  /**
   * A request's view of the stream: every frame after `afterId` (replayed from the log), then the
   * live tail, with no gap and no duplicate; it ends after the terminal frame. Attaches the request.
   */
  readonly listen: (requestId: RequestId, afterId: number) => Stream.Stream<Frame, SlowListener>
  /** Stops counting the request; interrupts the generation when no request is left. */
  readonly detach: (requestId: RequestId) => Effect.Effect<void>
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
  }
>()("dac/engine/Generations") {
  static readonly layer = Layer.effect(
    Generations,
    Effect.gen(function* () {
      const messages = yield* MessagesRepo
      const scope = yield* Effect.scope
      const byRequestId = new Map<RequestId, Generation>()

      // A stored turn's reply is written back; a stateless completion's exists only in memory.
      const finish = (stored: Message | undefined, outcome: FinishTurn) =>
        stored === undefined ? Effect.succeed(transientReply(outcome)) : messages.finishTurn(stored, outcome)

      const start = Effect.fn("Generations.start")(function* (spec: GenerationSpec) {
        const outcome = yield* Deferred.make<GenerationOutcome>()
        const waiting = new Set<RequestId>()
        const listeners = new Map<RequestId, Queue.Queue<Frame, SlowListener | Cause.Done>>()
        const log: Array<Frame> = []
        const aliases: Array<RequestId> = [spec.requestId]
        let nextId = firstGenerationFrameId
        let ended = false
        let text = ""
        let ttftMs: number | null = null
        let queueWaitMs = 0
        let usage: Usage | null = null
        let finishReason: string | null = null

        // Synchronous, so a listener registering between two emits sees each frame exactly once.
        const emit = (type: string, data: Readonly<Record<string, unknown>>) => {
          const f = frame(nextId++, type, data)
          log.push(f)
          for (const [requestId, queue] of listeners) {
            if (!Queue.offerUnsafe(queue, f)) {
              listeners.delete(requestId)
              Queue.failCauseUnsafe(queue, Cause.fail(new SlowListener({ lastId: f.id - 1 })))
            }
          }
          if (type === "done" || type === "error" || type === "cancelled") {
            ended = true
            for (const queue of listeners.values()) Queue.endUnsafe(queue)
            listeners.clear()
          }
        }

        const upstream = spec.adapter.stream(spec.request).pipe(
          Stream.runForEach((event) => {
            switch (event._tag) {
              case "FirstByte":
                ttftMs = performance.now() - spec.startedAt
                emit("meta", { ttft_ms: ttftMs })
                break
              case "RateLimitHint":
                spec.ticket.pause(event.pauseMs)
                break
              case "TextDelta":
                text += event.text
                emit("delta", { text: event.text })
                break
              case "Finish":
                finishReason = event.reason
                usage = event.usage
                return Effect.annotateCurrentSpan({
                  "gen_ai.response.finish_reasons": [event.reason],
                  "gen_ai.usage.input_tokens": event.usage?.input_tokens,
                  "gen_ai.usage.output_tokens": event.usage?.output_tokens,
                })
            }
            return Effect.void
          }),
        )
        // Waits for the pacer, then calls upstream; the slot goes back however the call ends.
        const genAi = {
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": spec.adapter.name,
          "gen_ai.request.model": spec.request.model,
        }
        const consume = Effect.flatMap(
          spec.ticket.dispatched.pipe(Effect.withSpan("pacer.wait", { attributes: genAi })),
          (waited) => {
            queueWaitMs = waited
            return upstream.pipe(
              Effect.onExit((exit) =>
                Effect.sync(() =>
                  spec.ticket.release(
                    Exit.isFailure(exit)
                      ? Cause.findErrorOption(exit.cause).pipe(Option.getOrUndefined)
                      : undefined,
                  ),
                ),
              ),
            )
          },
        ).pipe(
          Effect.onInterrupt(() => Effect.sync(spec.ticket.abandon)),
          Effect.withSpan("generation", { attributes: { ...genAi, "dac.request_id": spec.requestId } }),
        )

        // Runs once however the generation ends (done, failed, interrupted), uninterruptibly, so the
        // assistant message never stays `pending` while the process lives.
        const settle = (exit: Exit.Exit<void, ProviderError>) =>
          Effect.gen(function* () {
            const latencyMs = performance.now() - spec.startedAt
            let result: GenerationOutcome
            if (Exit.isSuccess(exit)) {
              const message = yield* finish(spec.assistantMessage, {
                content: text,
                status: "complete",
                usage,
                finishReason: finishReason ?? "stop",
                errorCode: null,
              })
              result = { _tag: "Completed", message, ttftMs, latencyMs, queueWaitMs, usage }
              yield* Effect.logDebug("reply complete", { ttft_ms: ttftMs, latency_ms: latencyMs })
              emit("done", {
                message_id: message.message_id,
                finish_reason: message.finish_reason,
                usage,
                latency_ms: latencyMs,
                queue_wait_ms: queueWaitMs,
              })
            } else {
              const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
              const message = yield* finish(spec.assistantMessage, {
                content: text,
                status: error ? "failed" : "cancelled",
                usage,
                finishReason: null,
                errorCode: error?.code ?? null,
              })
              if (error) {
                yield* Effect.logWarning("upstream failed", {
                  provider: spec.adapter.name,
                  code: error.code,
                  error: error.message,
                })
                result = { _tag: "Failed", message, error, ttftMs, latencyMs, queueWaitMs }
                emit("error", { code: error.code, message: error.message, retryable: error.retryable })
              } else {
                result = { _tag: "Cancelled", message, ttftMs, latencyMs, queueWaitMs }
                emit("cancelled", {})
              }
            }
            yield* Deferred.succeed(outcome, result)
            // Kept a while so late joiners and reconnects are served from the log, not the store.
            yield* Effect.sleep(finishedRetentionMs).pipe(
              Effect.andThen(
                Effect.sync(() => {
                  for (const requestId of aliases) byRequestId.delete(requestId)
                }),
              ),
              Effect.forkIn(scope),
            )
          })

        const fiber = yield* consume.pipe(
          Effect.onExit(settle),
          Effect.forkIn(scope, { startImmediately: true }),
        )

        const detach = (requestId: RequestId) =>
          Effect.suspend(() => {
            waiting.delete(requestId)
            const queue = listeners.get(requestId)
            if (queue) {
              listeners.delete(requestId)
              Queue.endUnsafe(queue)
            }
            return waiting.size === 0 && listeners.size === 0 && !ended ? Fiber.interrupt(fiber) : Effect.void
          })

        const generation: Generation = {
          id: newGenerationId(),
          org: spec.org,
          provider: spec.adapter.name,
          model: spec.request.model,
          isEnded: () => ended,
          outcome,
          attach: (requestId) => {
            waiting.add(requestId)
          },
          names: aliases,
          isListening: (requestId) => listeners.has(requestId),
          listen: (requestId, afterId) =>
            Stream.unwrap(
              Effect.flatMap(
                // Room for the whole replay plus the live buffer.
                Effect.suspend(() =>
                  Queue.bounded<Frame, SlowListener | Cause.Done>(log.length + listenerBuffer),
                ),
                (queue) =>
                  // Replay and registration in one synchronous step: no emit can fall between them.
                  Effect.sync(() => {
                    const replay = log.filter((f) => f.id > afterId)
                    if (ended) return Stream.fromIterable(replay)
                    const unsent = Queue.offerAllUnsafe(queue, replay)
                    if (unsent.length > 0) {
                      return Stream.fail(new SlowListener({ lastId: afterId }))
                    }
                    listeners.set(requestId, queue)
                    return Stream.fromQueue(queue)
                  }),
              ),
            ),
          detach,
          cancelRequest: (requestId) =>
            Effect.suspend(() => {
              const queue = listeners.get(requestId)
              if (queue) {
                listeners.delete(requestId)
                Queue.offerUnsafe(queue, frame(nextId, "cancelled", {}))
                Queue.endUnsafe(queue)
              }
              return detach(requestId)
            }),
          cancel: Fiber.interrupt(fiber),
        }
        byRequestId.set(spec.requestId, generation)
        return generation
      })

      return Generations.of({
        start,
        byRequest: (requestId) => Option.fromNullishOr(byRequestId.get(requestId)),
        alias: (requestId, generation) => {
          generation.names.push(requestId)
          byRequestId.set(requestId, generation)
        },
      })
    }),
  )
}
