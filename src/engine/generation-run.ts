import { Cause, Deferred, Effect, Exit, Option, Schedule, type Scope } from "effect"
import type { AppConfigShape } from "../config.ts"
import {
  GenerationTimeout,
  GenerationTooLarge,
  StoreUnavailable,
  type ThreadNotFound,
} from "../domain/errors.ts"
import { type MessageId, newMessageId, type RequestId, type ThreadId } from "../domain/ids.ts"
import { type ProviderError, UpstreamError } from "../domain/provider-errors.ts"
import { Message, type Usage } from "../domain/thread.ts"
import type { ProviderEvent, ProviderRequest } from "../providers/provider.ts"
import { type FinishTurn, type MessagesRepo, withOutcome } from "../store/messages-repo.ts"
import { withPerCallSpan } from "../telemetry/spans.ts"
import type { GenerationError, GenerationOutcome, GenerationSpec } from "./generations.ts"
import type { LiveGeneration } from "./live-generation.ts"
import type { Ticket } from "./pacer.ts"
import type { ReplyProgress } from "./reply-progress.ts"
import type { QueuedTurn } from "./thread-actors.ts"
import type { ThreadLocks } from "./thread-locks.ts"
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

/** Why a turn's messages could not be stored (the insert turns a defect into StoreUnavailable). */
const insertErrorOf = (cause: Cause.Cause<ThreadNotFound | StoreUnavailable>) =>
  Cause.findErrorOption(cause).pipe(
    Option.getOrElse(() => new StoreUnavailable({ message: "the turn could not be stored; try again" })),
  )

/** Where a reply made outside the store belongs (a relayed one's, from its `done`); none for a stateless one. */
export interface ReplyIdentity {
  readonly messageId: MessageId
  readonly threadId: ThreadId
  readonly provider: string
  readonly model: string
  readonly requestId: RequestId
}

/**
 * A reply shaped like a stored one that this process does not write: a stateless completion's, or
 * one another replica ran and stored (read from its relay, engine/relay.ts).
 */
export const transientReply = (outcome: FinishTurn, identity?: ReplyIdentity): Message => {
  const now = new Date().toISOString()
  return new Message(
    {
      message_id: identity?.messageId ?? newMessageId(),
      thread_id: identity?.threadId ?? ("00000000-0000-0000-0000-000000000000" as ThreadId),
      role: "assistant",
      content: outcome.content,
      status: outcome.status,
      provider: identity?.provider ?? null,
      model: identity?.model ?? null,
      usage: outcome.usage,
      finish_reason: outcome.finishReason,
      error_code: outcome.errorCode,
      request_id: identity?.requestId ?? null,
      created_at: now,
      updated_at: now,
    },
    { disableChecks: true },
  )
}

/** The final write of a reply is tried this often, `finalWriteBackoffMs` apart and doubling, before its listeners are told. */
const finalWriteAttempts = 3
const finalWriteBackoffMs = 100

/** After that, the reply is written as failed in the background, once a second for a minute at most. */
const repairSchedule = { schedule: Schedule.spaced("1 second"), times: 60 }

/** PostgreSQL's text cannot hold U+0000: a reply's is shown and stored as U+FFFD, the same for both. */
const storableText = (text: string) => (text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text)

/** What running a generation needs from the Generations layer. */
export interface RunDeps {
  readonly config: AppConfigShape
  readonly messages: MessagesRepo["Service"]
  readonly progress: ReplyProgress["Service"]
  /** Where background repairs of unstored replies run. */
  readonly scope: Scope.Scope
  /** Turns of a thread on other replicas (REDIS_URL): one at a time on all of them. */
  readonly threadLocks: ThreadLocks["Service"]
  /** The generation settled (its terminal frame is out): the layer's bookkeeping. */
  readonly settled: (generation: LiveGeneration) => void
}

/**
 * The run of one generation, as a fiber of its own: it waits for its thread's turn and the pacer,
 * calls upstream (while its messages are stored), feeds the generation's hub, and settles it however
 * that ends: the reply written, exactly one terminal frame, the outcome decided.
 */
export const makeRun = (deps: RunDeps) => {
  const { config, messages, progress, scope } = deps
  // A stored turn's reply is written back; a stateless completion's exists only in memory. A
  // failed write is tried again a few times; then (whatever failed, a defect too) it is left
  // unwritten (undefined) and the generation still ends for every listener.
  const finish = (stored: Message | undefined, outcome: FinishTurn) =>
    stored === undefined
      ? Effect.succeed<Message | undefined>(transientReply(outcome))
      : messages.finishTurn(stored, outcome, config.replicaId).pipe(
          Effect.retry({
            schedule: Schedule.exponential(finalWriteBackoffMs),
            times: finalWriteAttempts - 1,
          }),
          Effect.catchCause(() => Effect.succeed(undefined)),
        )

  /** Writes, in the background, a reply the store could not take: as failed, once it answers. */
  const repair = (stored: Message, outcome: FinishTurn) =>
    messages.finishTurn(stored, outcome, config.replicaId).pipe(
      Effect.retry(repairSchedule),
      Effect.andThen(Effect.logInfo("stored a reply the store could not take at first")),
      Effect.catchCause(() =>
        Effect.logError("a reply could not be stored; the next start-up marks it interrupted"),
      ),
      Effect.annotateLogs({ message_id: stored.message_id }),
      Effect.forkIn(scope),
    )

  /**
   * Waits for its thread's turn and the pacer, calls upstream (while its messages are stored),
   * feeds `generation`, and settles it however that ends.
   */
  return (spec: GenerationSpec, generation: LiveGeneration) => {
    // Joined once at the end (and per save of a stored reply): `+=` per token would keep a rope
    // of one node per token alive with the reply (it is retained for the coalescer's result TTL).
    const toolCalls = new ToolCallAccumulator()
    const reply = { parts: [] as Array<string>, lastDeltaId: null as number | null, toolCalls }
    let replyBytes = 0
    let ttftMs: number | null = null
    let queueWaitMs = 0
    let usage: Usage | null = null
    let finishReason: string | null = null
    /** The stored reply once its insert landed, and how its growth is told to the writer. */
    let stored: Message | undefined
    let grew: ((bytes: number) => void) | undefined
    let ticket: Ticket | undefined

    /**
     * Counts `bytes` more of the reply (its text and its tool calls' arguments); past
     * GENERATION_MAX_BYTES it stops the generation (its upstream call is aborted) and says so.
     */
    const tooLarge = (bytes: number) => {
      replyBytes += bytes
      if (replyBytes <= config.generationMaxBytes) return false
      generation.stop(
        new GenerationTooLarge({
          message: `the reply grew past ${config.generationMaxBytes} bytes (GENERATION_MAX_BYTES)`,
        }),
      )
      return true
    }
    // Each event arrives synchronously from the adapter's I/O callback: no fiber hop per token.
    const onEvent = (event: ProviderEvent) => {
      switch (event._tag) {
        case "FirstByte":
          ttftMs = performance.now() - spec.startedAt
          generation.emit("meta", { ttft_ms: ttftMs })
          break
        case "RateLimitHint":
          ticket?.pause(event.pauseMs)
          break
        case "TextDelta": {
          if (generation.stopping) break
          const text = storableText(event.text)
          const bytes = Buffer.byteLength(text)
          if (tooLarge(bytes)) break
          reply.parts.push(text)
          generation.emit("delta", { text })
          reply.lastDeltaId = generation.lastEventId()
          grew?.(bytes)
          break
        }
        case "ToolCallDelta":
          if (generation.stopping) break
          // A call's arguments are part of the reply (kept, streamed, answered whole): they count
          // toward the same bound as its text.
          if (tooLarge(Buffer.byteLength(event.argumentsDelta))) break
          generation.emit("tool_call", toolCalls.add(event))
          grew?.(Buffer.byteLength(event.argumentsDelta))
          break
        case "Finish":
          finishReason = event.reason
          usage = event.usage
          break
      }
    }
    const genAi = {
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": spec.adapter.name,
      "gen_ai.request.model": spec.request.model,
    }
    // The pacer slot is a resource bracketing the call: given back however the call ends (a
    // RateLimited answer pauses the provider; leaving the queue early frees the place), by
    // `acquireUseRelease` rather than a Scope (the same guarantee without a scope and its finalizer
    // list per call). A bound reached (time, size) stops the generation: its fiber is interrupted,
    // which aborts the upstream request, and it ends with that bound's error, its text so far kept.
    // (No race per call: interrupting the fiber it already has costs nothing until a bound is reached.)
    const releaseSlot = (slot: Ticket, exit: Exit.Exit<unknown, unknown>) =>
      Effect.sync(() => {
        // The exit is the call's: its error is a GenerationError.
        const error = Exit.isFailure(exit)
          ? (Cause.findErrorOption(exit.cause).pipe(Option.getOrUndefined) as GenerationError | undefined)
          : undefined
        if (Exit.isSuccess(exit)) slot.release()
        else if (isProviderError(error)) slot.release(error)
        else slot.abandon()
      })
    const call = (request: ProviderRequest) =>
      Effect.acquireUseRelease(
        Effect.isEffect(spec.ticket) ? spec.ticket : Effect.succeed(spec.ticket),
        (slot) =>
          Effect.gen(function* () {
            ticket = slot
            queueWaitMs = yield* slot.dispatched.pipe(withPerCallSpan("pacer.wait", genAi))
            const timer = setTimeout(
              () =>
                generation.stop(
                  new GenerationTimeout({
                    message: `the reply took longer than ${config.generationMaxMs} ms (GENERATION_MAX_MS)`,
                  }),
                ),
              Math.min(config.generationMaxMs, maxTimerMs),
            )
            yield* spec.adapter.run(request, onEvent).pipe(
              Effect.ensuring(Effect.sync(() => clearTimeout(timer))),
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
          }),
        releaseSlot,
      )
    // A thread turn waits for the turns before it (its history then has their replies), and goes
    // upstream while its messages are inserted: told synchronously how the insert ended (no fiber
    // per turn to watch it), a failed insert stops the generation, which interrupts the call.
    /**
     * The thread is this turn's on every replica (REDIS_URL), and what to send: the actor's history,
     * or, when another replica ran a turn of the thread meanwhile, the thread as stored now, up to
     * this turn's own question (what came after it is later turns').
     */
    const threadTurn = (turn: QueuedTurn) =>
      Effect.flatMap(deps.threadLocks.take(turn.threadId, spec.requestId), (shared) => {
        if (shared === null || shared === turn.lastSettledId()) return Effect.sync(() => turn.history())
        // Its own messages first (so what later turns stored after them is left out), then the thread.
        return Effect.exit(Deferred.await(turn.inserted)).pipe(
          Effect.andThen(messages.loadThread(spec.org, turn.threadId, spec.requestId)),
          Effect.map((loaded) => {
            if (Option.isSome(loaded)) turn.resync({ ...loaded.value, lastSettledId: shared })
            return turn.history()
          }),
          // The store did not answer: the actor's history, as without Redis.
          Effect.orElseSucceed(() => turn.history()),
        )
      })

    const turn = spec.turn
    const consume = (
      turn === undefined
        ? call(spec.request)
        : Effect.andThen(
            turn.ready,
            Effect.flatMap(threadTurn(turn), (history) => {
              turn.onInserted((inserted) => {
                if (Exit.isSuccess(inserted)) {
                  stored = inserted.value.assistantMessage
                  grew = progress.track(stored.message_id, reply)
                } else generation.stop(insertErrorOf(inserted.cause))
              })
              return call({ ...spec.request, messages: history })
            }),
          )
    ).pipe(withPerCallSpan("generation", { ...genAi, "dac.request_id": spec.requestId }))

    // Runs once however the generation ends (done, failed, interrupted, a defect), uninterruptibly:
    // every listener gets exactly one terminal frame, and the assistant message never stays
    // `pending` while the process lives and the store answers.
    const settle = (exit: Exit.Exit<void, GenerationError>) =>
      Effect.gen(function* () {
        // The insert outlives an interrupted call (it runs on its own): its fate is known. A reply
        // whose messages could not be stored fails with that error, even when its call completed.
        let insertError: ThreadNotFound | StoreUnavailable | undefined
        if (turn !== undefined && stored === undefined) {
          const inserted = yield* Effect.exit(Deferred.await(turn.inserted))
          if (Exit.isSuccess(inserted)) stored = inserted.value.assistantMessage
          else insertError = insertErrorOf(inserted.cause)
        }
        if (stored !== undefined) progress.untrack(stored.message_id)
        // A slot taken before the generation started comes back even when the call never ran
        // (given back already otherwise: this does nothing then).
        if (!Effect.isEffect(spec.ticket)) spec.ticket.abandon()
        const latencyMs = performance.now() - spec.startedAt
        const timings = { ttftMs, latencyMs, queueWaitMs }
        const error =
          insertError ??
          (Exit.isSuccess(exit)
            ? undefined
            : generation.stopping !== undefined && Cause.hasInterruptsOnly(exit.cause)
              ? generation.stopping
              : failureOf(exit.cause, spec.adapter.name))
        if (error?._tag === "UpstreamError" && !Exit.isSuccess(exit) && Cause.hasDies(exit.cause)) {
          yield* Effect.logError("generation failed with a defect", exit.cause)
        }
        const content = reply.parts.join("")
        const calls = toolCalls.result()
        const outcome: FinishTurn =
          Exit.isSuccess(exit) && error === undefined
            ? {
                content,
                status: "complete",
                usage,
                finishReason: finishReason ?? "stop",
                errorCode: null,
                lastEventId: reply.lastDeltaId,
                toolCalls: calls,
              }
            : {
                content,
                // A reply cut off by a shutdown is `interrupted`, as one a crash cut off.
                status: error?._tag === "ShuttingDown" ? "interrupted" : error ? "failed" : "cancelled",
                usage,
                finishReason: null,
                errorCode: error?.code ?? null,
                lastEventId: reply.lastDeltaId,
                toolCalls: calls,
              }
        const message = yield* finish(stored, outcome)
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
          yield* repair(stored!, failed)
          const storeError = new StoreUnavailable({
            message: "the reply could not be stored: the store is unavailable; try again",
          })
          result = {
            _tag: "Failed",
            // As the store will have it once it answers again.
            message: withOutcome(stored!, failed, new Date().toISOString()),
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
          result = { _tag: "Completed", message, usage, toolCalls: calls, ...timings }
          yield* Effect.logDebug("reply complete", { ttft_ms: ttftMs, latency_ms: latencyMs })
          generation.end(result, "done", {
            message_id: message.message_id,
            finish_reason: message.finish_reason ?? "stop",
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
        // The thread is free on every replica (and its reply recorded) before its next turn here goes on.
        if (turn !== undefined) {
          const reply = result._tag === "Completed" && stored !== undefined ? result.message.message_id : null
          deps.threadLocks.leave(turn.threadId, spec.requestId, reply)
        }
        // The thread's next turn goes on, with this one's reply in its history when it completed.
        turn?.settle({
          stored: stored !== undefined,
          completeReply:
            result._tag === "Completed" ? { content: result.message.content, toolCalls: calls } : null,
        })
        spec.onSettled?.(result)
        yield* Deferred.succeed(generation.outcome, result)
        deps.settled(generation)
      })

    return consume.pipe(Effect.onExit(settle))
  }
}
