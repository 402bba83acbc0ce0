import { Context, Deferred, Effect, Exit, Layer } from "effect"
import { AppConfig } from "../config.ts"
import type { ChatRequest, CoalesceRole } from "../domain/chat.ts"
import { TurnResult } from "../domain/chat.ts"
import {
  ContentTooLarge,
  IdempotencyConflict,
  type KeyLimitError,
  type PacerQueueFull,
  type ProviderNotConfigured,
  RequestCancelled,
  type StoreUnavailable,
  type ThreadNotFound,
  TooManyListeners,
  type UnknownModel,
  type UnknownProvider,
} from "../domain/errors.ts"
import { newRequestId, type OrgId, type RequestId, type ThreadId } from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"
import type { Message, Usage } from "../domain/thread.ts"
import type { ChatMessage, ProviderOptions } from "../providers/provider.ts"
import { Providers } from "../providers/providers.ts"
import { MessagesRepo } from "../store/messages-repo.ts"
import type { RequestLogEntry } from "../store/request-log-repo.ts"
import { RequestLog } from "../telemetry/request-log.ts"
import { tracedFn } from "../telemetry/spans.ts"
import { Coalescer, coalesceKey, conversationKey, type LeaderTurn } from "./coalescer.ts"
import {
  type Generation,
  type GenerationError,
  type GenerationOutcome,
  type GenerationSpec,
  Generations,
} from "./generations.ts"
import { type KeyAdmission, KeyLimiter, noLimit } from "./key-limits.ts"
import { Pacer } from "./pacer.ts"
import { bypassesCoalescing } from "./tool-calls.ts"

/** The refusals logged as `rejected` requests: nothing was stored or sent for them. */
const rejections = new Set([
  "PacerQueueFull",
  "KeyRateLimited",
  "KeyConcurrencyLimited",
  "KeyBudgetExhausted",
])

/** A generation already feeds as many streams as it may. */
export const tooManyListeners = (max: number) =>
  new TooManyListeners({
    message: `this reply already feeds ${max} streams (MAX_LISTENERS_PER_GENERATION); try again later`,
  })

export interface TurnInput {
  readonly org: OrgId
  /** The stored thread the turn joins; null for a stateless completion (`conversation` given). */
  readonly threadId: ThreadId | null
  /**
   * A stateless completion (the OpenAI-compatible endpoint): the whole conversation comes with the
   * request and nothing is stored; `body.content` is its last message.
   */
  readonly conversation?: ReadonlyArray<ChatMessage> | undefined
  readonly body: ChatRequest
  /** Tools, tool choice, output format: passed on to the provider as they are. */
  readonly options?: ProviderOptions | undefined
  /** Waiting for the whole reply, or streaming it (`STREAM_FANOUT_ENABLED=0` stops sharing streams). */
  readonly mode: "wait" | "stream"
  /** Same key and body → the same turn; same key, other body → 409. */
  readonly idempotencyKey?: string | undefined
  /** `false`: this request never shares an upstream call (the opt-out header). */
  readonly coalesce?: boolean | undefined
  /**
   * Who asks, with the key's limits (KeyLimiter). Absent, or without a key: never limited. Its org
   * is `org`.
   */
  readonly caller?: Caller | undefined
}

export type StartError =
  | ContentTooLarge
  | UnknownProvider
  | UnknownModel
  | ProviderNotConfigured
  | ThreadNotFound
  | IdempotencyConflict
  | PacerQueueFull
  | StoreUnavailable
  | TooManyListeners
  | KeyLimitError

export type TurnError = StartError | RequestCancelled | GenerationError

/** A turn that is under way: its messages are stored and its generation runs. */
export interface StartedTurn {
  readonly requestId: RequestId
  readonly input: TurnInput
  readonly coalesce: CoalesceRole
  /** The stored user message; null for a stateless completion. */
  readonly userMessage: Message | null
  readonly generation: Generation
  readonly startedAt: number
  /** Records the request in the request log once it is over (each request exactly once). */
  readonly record: (outcome: GenerationOutcome | "detached") => void
}

/**
 * A chat turn: persist the user's message, run a generation for the reply, persist the reply.
 * The pacer (around the upstream call) and the coalescer (around `start`) slot in here.
 */
export class Turns extends Context.Service<
  Turns,
  {
    /** Stores the user's message and starts the generation; the caller listens or waits. */
    readonly start: (input: TurnInput) => Effect.Effect<StartedTurn, StartError>
    /** Waits for the whole reply. Interrupting the caller detaches it from the generation. */
    readonly complete: (
      input: TurnInput,
    ) => Effect.Effect<
      { readonly turn: StartedTurn; readonly outcome: Extract<GenerationOutcome, { _tag: "Completed" }> },
      TurnError
    >
    /** `complete`, as the thread API answers it. */
    readonly send: (input: TurnInput) => Effect.Effect<TurnResult, TurnError>
  }
>()("dac/engine/Turns") {
  static readonly layer = Layer.effect(
    Turns,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const providers = yield* Providers
      const messages = yield* MessagesRepo
      const generations = yield* Generations
      const requestLog = yield* RequestLog
      const coalescer = yield* Coalescer
      const pacer = yield* Pacer
      const keyLimiter = yield* KeyLimiter

      /** One request-log row for a request of this turn; `outcome` fills in what happened. */
      const logRequest = (
        input: TurnInput,
        requestId: RequestId,
        startedAt: number,
        outcome: Pick<RequestLogEntry, "coalesce" | "status" | "error_code" | "queue_wait_ms" | "ttft_ms"> & {
          readonly usage: Usage | null
        },
      ) =>
        requestLog.record({
          request_id: requestId,
          org_id: input.org,
          thread_id: input.threadId,
          provider: input.body.provider,
          model: input.body.model,
          coalesce: outcome.coalesce,
          status: outcome.status,
          error_code: outcome.error_code,
          queue_wait_ms: outcome.queue_wait_ms,
          ttft_ms: outcome.ttft_ms,
          latency_ms: performance.now() - startedAt,
          input_tokens: outcome.usage?.input_tokens ?? null,
          output_tokens: outcome.usage?.output_tokens ?? null,
        })

      const record = (
        input: TurnInput,
        requestId: RequestId,
        coalesce: CoalesceRole,
        startedAt: number,
        admission: KeyAdmission,
      ): StartedTurn["record"] => {
        let recorded = false
        return (outcome) => {
          if (recorded) return
          recorded = true
          // The request is over, however it ended: its key's concurrency slot comes back.
          admission.release()
          const done = outcome === "detached" ? null : outcome
          logRequest(input, requestId, startedAt, {
            coalesce,
            status:
              done === null || done._tag === "Cancelled"
                ? "cancelled"
                : done._tag === "Completed"
                  ? "ok"
                  : "error",
            error_code: done?._tag === "Failed" ? done.error.code : null,
            queue_wait_ms: done?.queueWaitMs ?? null,
            ttft_ms: done?.ttftMs ?? null,
            // Usage is counted once: on the leader's row.
            usage: done?._tag === "Completed" && coalesce === "leader" ? done.usage : null,
          })
        }
      }

      /** Whether the provider is asked for a stream (`UPSTREAM_STREAM`); otherwise for one body. */
      const streamsUpstream = (input: TurnInput) =>
        input.mode === "stream" ||
        config.upstreamStream === "always" ||
        (config.upstreamStream === "threads" && input.conversation === undefined)

      /** Stores the user's message and starts a generation: what a leader (or a bypass) does. */
      const lead = Effect.fnUntraced(function* (
        input: TurnInput,
        requestId: RequestId,
        startedAt: number,
        admission: KeyAdmission,
        onSettled?: GenerationSpec["onSettled"],
      ) {
        const { body } = input
        const adapter = yield* providers.resolve(body.provider, body.model)
        // A full queue refuses before anything is stored or sent.
        const ticket = yield* pacer.enqueue(adapter.name, input.org)
        const request = {
          provider: adapter.name,
          model: body.model,
          temperature: body.temperature,
          maxTokens: body.max_tokens,
          topP: body.top_p,
          stop: body.stop,
          stream: streamsUpstream(input),
          ...input.options,
        }
        // A stateless completion brings its conversation; a thread turn stores the user's message
        // and a pending reply, and sends the thread's history.
        const stored =
          input.conversation !== undefined || input.threadId === null
            ? undefined
            : yield* messages
                .startTurn({
                  org: input.org,
                  threadId: input.threadId,
                  requestId,
                  content: body.content,
                  provider: body.provider,
                  model: body.model,
                })
                .pipe(Effect.onError(() => Effect.sync(ticket.abandon)))
        const generation = yield* generations.start({
          org: input.org,
          ticket,
          requestId,
          adapter,
          startedAt,
          assistantMessage: stored?.assistantMessage,
          // The key that led the upstream call pays for its tokens (followers share them), counted
          // as the outcome is decided: before any waiting request, or the next one, goes on.
          onSettled: (outcome) => {
            const usage = outcome._tag === "Completed" ? outcome.usage : outcome.message.usage
            if (usage != null) admission.charge(usage.input_tokens + usage.output_tokens)
            onSettled?.(outcome)
          },
          request: {
            ...request,
            messages: stored?.history ?? input.conversation ?? [{ role: "user", content: body.content }],
          },
        })
        return { userMessage: stored?.userMessage ?? null, generation }
      })

      const startAs = tracedFn("Turns.start")(
        Effect.fnUntraced(function* (input: TurnInput, requestId: RequestId, admission: KeyAdmission) {
          const startedAt = performance.now()
          const { body } = input
          yield* Effect.annotateCurrentSpan({
            "gen_ai.provider.name": body.provider,
            "gen_ai.request.model": body.model,
          })
          if (body.content.length > config.maxContentChars) {
            return yield* new ContentTooLarge({
              message: `content is ${body.content.length} characters; the limit is ${config.maxContentChars} (MAX_CONTENT_CHARS)`,
            })
          }
          const started = (coalesce: CoalesceRole, turn: LeaderTurn): StartedTurn => ({
            requestId,
            input,
            coalesce,
            userMessage: turn.userMessage,
            generation: turn.generation,
            startedAt,
            record: record(input, requestId, coalesce, startedAt, admission),
          })

          const sharable =
            coalescer.enabled &&
            input.coalesce !== false &&
            (input.mode === "wait" || coalescer.streamFanout) &&
            !bypassesCoalescing(input.options, input.conversation)
          if (!sharable && input.idempotencyKey === undefined) {
            return started("bypass", yield* lead(input, requestId, startedAt, admission))
          }
          const requestKey =
            input.conversation === undefined
              ? coalesceKey(input.org, input.threadId, body)
              : conversationKey(input.org, input.conversation, body)
          // A reply fetched in one body has no tokens to stream: streaming requests never join it.
          const bodyKey = streamsUpstream(input) ? requestKey : `${requestKey}:one-body`
          const key =
            input.idempotencyKey === undefined ? bodyKey : `idempotency:${input.org}:${input.idempotencyKey}`
          const claim = coalescer.claim<StartError>(key, bodyKey)
          if (claim._tag === "Follower") {
            if (claim.lead.bodyKey !== bodyKey) {
              return yield* new IdempotencyConflict({
                message: "this Idempotency-Key was used with a different request body",
              })
            }
            yield* providers.resolve(body.provider, body.model)
            const turn = yield* Deferred.await(claim.lead.turn)
            if (
              input.mode === "stream" &&
              turn.generation.listenerCount() >= config.maxListenersPerGeneration
            ) {
              return yield* tooManyListeners(config.maxListenersPerGeneration)
            }
            generations.alias(requestId, turn.generation)
            const role = Deferred.isDoneUnsafe(turn.generation.outcome) ? "cache_hit" : "follower"
            return started(role, turn)
          }
          // The key outlives the generation by the TTL that fits how it ended. A leader that could
          // not start (a typed error or a defect) frees the key at once and hands its followers the
          // same answer. (It cannot be interrupted half way: see `start`.)
          const turn = yield* lead(input, requestId, startedAt, admission, (outcome) =>
            coalescer.settle(key, outcome._tag),
          ).pipe(
            Effect.onExit((exit) => {
              if (Exit.isSuccess(exit)) return Deferred.succeed(claim.lead.turn, exit.value)
              coalescer.abandon(key)
              return Deferred.failCause(claim.lead.turn, exit.cause)
            }),
          )
          return started(input.idempotencyKey !== undefined && !sharable ? "bypass" : "leader", turn)
        }),
      )

      // Every log line of the request, and of the generation it forks, names the request.
      // Starting is not interrupted half way (a client hanging up while its turn is stored): the
      // turn is stored and its generation started, or neither, and followers waiting on a leader
      // always get its turn or its error. The request is then counted on its generation (it waits
      // for it) before the interruption lands, which detaches it like any other hang-up.
      const start = (input: TurnInput) =>
        Effect.uninterruptibleMask((restore) => {
          const requestId = newRequestId()
          const startedAt = performance.now()
          // The key's limits come first: a request over one is refused before it is queued or
          // stored. A start that fails gives the concurrency slot back at once.
          const admit = input.caller === undefined ? Effect.succeed(noLimit) : keyLimiter.admit(input.caller)
          return admit.pipe(
            Effect.flatMap((admission) =>
              startAs(input, requestId, admission).pipe(Effect.onError(() => Effect.sync(admission.release))),
            ),
            Effect.tap((turn) => {
              turn.generation.attach(turn.requestId)
              return restore(Effect.void).pipe(
                Effect.onInterrupt(() => {
                  turn.record("detached")
                  return turn.generation.detach(turn.requestId)
                }),
              )
            }),
            // A request the pacer or its key's limits turned away is a request too: it is logged
            // as rejected.
            Effect.tapError((error) =>
              Effect.sync(() => {
                if (rejections.has(error._tag)) {
                  logRequest(input, requestId, startedAt, {
                    coalesce: "bypass",
                    status: "rejected",
                    error_code: error.code,
                    queue_wait_ms: null,
                    ttft_ms: null,
                    usage: null,
                  })
                }
              }),
            ),
            Effect.annotateLogs({ request_id: requestId, org_id: input.org }),
          )
        })

      const complete = tracedFn("Turns.complete")(
        Effect.fnUntraced(function* (input: TurnInput) {
          const turn = yield* start(input)
          const outcome = yield* Deferred.await(turn.generation.outcome).pipe(
            Effect.onInterrupt(() => {
              turn.record("detached")
              return turn.generation.detach(turn.requestId)
            }),
          )
          turn.record(outcome)
          if (outcome._tag === "Failed") return yield* Effect.fail(outcome.error)
          if (outcome._tag === "Cancelled") {
            return yield* new RequestCancelled({ message: `request ${turn.requestId} was cancelled` })
          }
          return { turn, outcome }
        }),
      )

      const send = tracedFn("Turns.send")(
        Effect.fnUntraced(function* (input: TurnInput) {
          const { turn, outcome } = yield* complete(input)
          return new TurnResult(
            {
              request_id: turn.requestId,
              // Thread turns always store the user's message (only stateless completions have none).
              user_message: turn.userMessage!,
              assistant_message: outcome.message,
              coalesce: turn.coalesce,
              metrics: {
                queue_wait_ms: outcome.queueWaitMs,
                ttft_ms: outcome.ttftMs,
                latency_ms: outcome.latencyMs,
              },
            },
            { disableChecks: true },
          )
        }),
      )

      return Turns.of({ start, complete, send })
    }),
  )
}
