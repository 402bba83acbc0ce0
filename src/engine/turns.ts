import { Context, Deferred, Effect, Exit, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"
import type { ChatRequest, CoalesceRole } from "../domain/chat.ts"
import { TurnResult } from "../domain/chat.ts"
import { textOf } from "../domain/content.ts"
import {
  ContentTooLarge,
  IdempotencyConflict,
  InvalidToolResult,
  type KeyLimitError,
  type PacerQueueFull,
  type ProviderNotConfigured,
  RequestCancelled,
  RequestNotFound,
  StoreUnavailable,
  ThreadMoved,
  type ThreadNotFound,
  TooManyListeners,
  type UnknownModel,
  type UnknownProvider,
} from "../domain/errors.ts"
import {
  type MessageId,
  newGenerationId,
  newMessageId,
  newRequestId,
  type OrgId,
  type RequestId,
  type ThreadId,
} from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"
import type { Thread, Usage } from "../domain/thread.ts"
import type { ChatMessage, ProviderOptions } from "../providers/provider.ts"
import { Providers } from "../providers/providers.ts"
import { type InsertedTurn, MessagesRepo, type StoredReply } from "../store/messages-repo.ts"
import type { RequestLogEntry } from "../store/request-log-repo.ts"
import { ThreadsRepo } from "../store/threads-repo.ts"
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
import { GenerationRelay, type RelayedTurn } from "./relay.ts"
import { type InsertError, type ThreadActor, ThreadActors } from "./thread-actors.ts"
import { bypassesCoalescing, toolResultProblem, unansweredCallsProblem } from "./tool-calls.ts"

/** The refusals logged as `rejected` requests: nothing was stored or sent for them. */
const rejections = new Set([
  "PacerQueueFull",
  "KeyRateLimited",
  "KeyConcurrencyLimited",
  "KeyBudgetExhausted",
])

/**
 * How the coalescer keeps a settled turn's key: an upstream failure is shared for the error TTL (a
 * failing provider is not stormed); a failure of the gateway itself (its store, its pacer queue, a
 * shutdown) is forgotten at once, like a cancel, so the next identical request tries again.
 */
const gatewayFailures = new Set(["StoreUnavailable", "ThreadNotFound", "PacerQueueFull", "ShuttingDown"])
const settledAs = (outcome: GenerationOutcome) =>
  outcome._tag === "Failed" && gatewayFailures.has(outcome.error._tag) ? "Cancelled" : outcome._tag

/** A thread turn's own messages (see `TurnInput.messages`). */
const ownMessages = (input: TurnInput): ReadonlyArray<ChatMessage> =>
  input.messages ?? [{ role: "user", content: input.body.content }]

/**
 * What a thread turn's key holds besides its parameters: the text of a plain user message (as it
 * always did), else its messages and options (parts, tool results, tools).
 */
const turnKey = (input: TurnInput, own: ReadonlyArray<ChatMessage>): unknown => {
  const [first] = own
  return own.length === 1 && first?.role === "user" && typeof first.content === "string" && !input.options
    ? first.content
    : [own, input.options ?? null]
}

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
  /**
   * A thread turn's own messages, as they are stored and sent: the user's (text or parts), or the
   * results of the tool calls of the thread's last reply. Absent: one user message of `body.content`.
   */
  readonly messages?: ReadonlyArray<ChatMessage> | undefined
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
  | ThreadMoved
  | InvalidToolResult
  | KeyLimitError

export type TurnError = StartError | RequestCancelled | GenerationError

/** What a re-attach finds: the live generation (under this request id), or the stored reply. */
export type Attachment =
  | { readonly _tag: "Live"; readonly requestId: RequestId; readonly generation: Generation }
  | { readonly _tag: "Stored"; readonly reply: StoredReply }

/** A turn that is under way: its messages are stored and its generation runs. */
export interface StartedTurn {
  readonly requestId: RequestId
  readonly input: TurnInput
  readonly coalesce: CoalesceRole
  /** The turn's messages as they are stored (a thread turn); none for a stateless completion. */
  readonly inserted: Deferred.Deferred<InsertedTurn, InsertError> | undefined
  /** How many turns of its thread ran or waited before it (0: it ran at once). */
  readonly queuePosition: number
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
    /** A new thread of `org`: its actor starts empty (its first turn reads nothing from the store). */
    readonly createThread: (org: OrgId, title: string | null) => Effect.Effect<Thread, StoreUnavailable>
    /**
     * Re-attaches to a thread turn's reply: the live generation (a reconnect continues its request,
     * a second viewer while it still listens follows as a new request), or the stored reply.
     */
    readonly attach: (
      org: OrgId,
      threadId: ThreadId,
      requestId: RequestId,
    ) => Effect.Effect<Attachment, RequestNotFound | TooManyListeners | StoreUnavailable>
    /**
     * Cancels a request (`request`: it leaves its generation, which stops when no request is left)
     * or its whole generation; false when it had already finished.
     */
    readonly cancel: (
      org: OrgId,
      requestId: RequestId,
      scope: "request" | "generation",
    ) => Effect.Effect<boolean, RequestNotFound | StoreUnavailable>
    /** Stops for a shutdown (see `Generations.drain`). */
    readonly drain: (graceMs: number) => Effect.Effect<void>
  }
>()("dac/engine/Turns") {
  static readonly layer = Layer.effect(
    Turns,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const providers = yield* Providers
      const generations = yield* Generations
      const requestLog = yield* RequestLog
      const coalescer = yield* Coalescer
      const pacer = yield* Pacer
      const keyLimiter = yield* KeyLimiter
      const threadActors = yield* ThreadActors
      const threads = yield* ThreadsRepo
      const messages = yield* MessagesRepo
      const relay = yield* GenerationRelay
      const forkInLayer = Effect.runForkWith(yield* Effect.context<never>())

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

      /**
       * Queues the turn on its thread (whose actor stores its messages) and starts its generation:
       * what a leader (or a bypass) does. A turn that runs at once takes its pacer place first, so a
       * full queue refuses it before anything is stored; one queued behind another takes it when its
       * turn comes (a turn waiting for its thread holds no slot).
       */
      const lead = Effect.fnUntraced(function* (
        input: TurnInput,
        actor: ThreadActor | undefined,
        requestId: RequestId,
        startedAt: number,
        admission: KeyAdmission,
        onSettled?: GenerationSpec["onSettled"],
        /** Its coalescing key, when identical sends share it: its thread keeps it once it completed. */
        key?: string,
        /** Shared with the other replicas (REDIS_URL): every thread turn, and a claimed completion. */
        shared?: RelayedTurn,
      ) {
        const { body } = input
        const adapter = yield* providers.resolve(body.provider, body.model)
        const queuePosition = actor?.turnsInFlight() ?? 0
        const ticket = queuePosition === 0 ? yield* pacer.enqueue(adapter.name, input.org) : undefined
        const own = ownMessages(input)
        const turn = actor?.enqueue({
          requestId,
          messages: own,
          provider: body.provider,
          model: body.model,
          userMessageId: newMessageId(),
          assistantMessageId: newMessageId(),
          key,
        })
        const generation = yield* generations.start({
          generationId: shared?.generationId,
          relay: shared,
          org: input.org,
          ticket: ticket ?? pacer.enqueue(adapter.name, input.org),
          requestId,
          adapter,
          startedAt,
          turn,
          // The key that led the upstream call pays for its tokens (followers share them), counted
          // as the outcome is decided: before any waiting request, or the next one, goes on.
          onSettled: (outcome) => {
            const usage = outcome._tag === "Completed" ? outcome.usage : outcome.message.usage
            if (usage != null) admission.charge(usage.input_tokens + usage.output_tokens)
            onSettled?.(outcome)
          },
          request: {
            provider: adapter.name,
            model: body.model,
            temperature: body.temperature,
            maxTokens: body.max_tokens,
            topP: body.top_p,
            stop: body.stop,
            stream: streamsUpstream(input),
            ...input.options,
            // A thread turn's history is read from its actor when its turn comes.
            messages: input.conversation ?? own,
          },
        })
        return { inserted: turn?.inserted, queuePosition, generation }
      })

      /**
       * Where on its thread a turn is asked: after the thread's last complete reply, or, for a
       * duplicate of the turn that just completed (the same words with the same parameters, sent
       * as an answer to the reply before it, or with no `parent_message_id` within
       * `COALESCE_REPEAT_WINDOW_MS`), where that turn was asked, so it finds that turn. A
       * `parent_message_id` the thread has moved past is refused.
       */
      const positionOf = (
        actor: ThreadActor,
        body: ChatRequest,
        keyAfter: (at: MessageId | null) => string,
      ) => {
        const current = actor.lastSettledId()
        const parent = body.parent_message_id ?? undefined
        const last = actor.lastCompleted()
        if (
          last !== undefined &&
          (parent === undefined
            ? performance.now() - last.at <= config.coalesceRepeatWindowMs
            : parent === last.positionBefore) &&
          keyAfter(last.positionBefore) === last.key
        ) {
          return Effect.succeed(last.positionBefore)
        }
        if (parent !== undefined && parent !== current) {
          return Effect.fail(
            new ThreadMoved({
              message: `parent_message_id ${parent} is not the thread's last reply (${current ?? "none yet"}); reload the thread and answer its last reply`,
            }),
          )
        }
        return Effect.succeed(current)
      }

      /** `requestId` follows `generation` from now on: found under that id here, and on any replica. */
      const nameFollower = (requestId: RequestId, generation: Generation) => {
        if (!relay.isCopy(generation)) generations.alias(requestId, generation)
        relay.name(requestId, generation)
      }

      /**
       * A leader here whose key another replica claimed first follows that replica's generation
       * through a copy of it: nothing is stored here (that replica stores the one turn), and the key
       * here is settled as the copy ends. Undefined when that replica is gone: this one leads.
       */
      const followElsewhere = Effect.fnUntraced(function* (
        remote: RelayedTurn,
        key: string,
        sameBody: string,
        input: TurnInput,
      ) {
        if (remote.bodyKey !== sameBody) {
          coalescer.abandon(key)
          return yield* new IdempotencyConflict({
            message: "this Idempotency-Key was used with a different request body",
          })
        }
        const copy = yield* relay.follow(remote)
        if (copy === undefined) return undefined
        const { threadId } = input
        const inserted = threadId === null ? undefined : Deferred.makeUnsafe<InsertedTurn, InsertError>()
        forkInLayer(
          Deferred.await(copy.outcome).pipe(
            Effect.flatMap((outcome) => {
              coalescer.settle(key, settledAs(outcome))
              if (threadId === null || inserted === undefined) return Effect.void
              // The thread moved on elsewhere: its next turn here reads it again.
              threadActors.forget(threadId)
              return messages.listByThread(input.org, threadId).pipe(
                Effect.flatMap((stored) => {
                  const turn = stored.filter((m) => m.request_id === remote.leader)
                  const inputMessages = turn.filter((m) => m.role !== "assistant")
                  const assistantMessage = turn.find((m) => m.role === "assistant")
                  return inputMessages[0] === undefined || assistantMessage === undefined
                    ? Effect.fail(
                        new StoreUnavailable({ message: "the shared turn is not stored yet; try again" }),
                      )
                    : Effect.succeed({ userMessage: inputMessages[0], inputMessages, assistantMessage })
                }),
                Effect.exit,
                Effect.flatMap((exit) => Deferred.done(inserted, exit)),
              )
            }),
          ),
        )
        return { inserted, queuePosition: 0, generation: copy } satisfies LeaderTurn
      })

      const startAs = tracedFn("Turns.start")(
        Effect.fnUntraced(function* (input: TurnInput, requestId: RequestId, admission: KeyAdmission) {
          const startedAt = performance.now()
          const { body } = input
          yield* Effect.annotateCurrentSpan({
            "gen_ai.provider.name": body.provider,
            "gen_ai.request.model": body.model,
          })
          const own = ownMessages(input)
          for (const text of input.messages === undefined
            ? [body.content]
            : own.map((m) => textOf(m.content))) {
            if (text.length > config.maxContentChars) {
              return yield* new ContentTooLarge({
                message: `content is ${text.length} characters; the limit is ${config.maxContentChars} (MAX_CONTENT_CHARS)`,
              })
            }
          }
          // A thread turn enters its thread's actor (loaded from the store the first time).
          const actor =
            input.conversation === undefined && input.threadId !== null
              ? yield* threadActors.enter(input.org, input.threadId)
              : undefined
          // Tool results answer the calls of the thread's last reply, every one of them, once.
          // A user message waits for them: a call left unanswered would break the thread for good.
          if (actor !== undefined) {
            const problem = own.some((m) => m.role === "tool")
              ? toolResultProblem(actor.conversation(), own)
              : unansweredCallsProblem(actor.conversation())
            if (problem !== undefined) return yield* new InvalidToolResult({ message: problem })
          }
          const started = (coalesce: CoalesceRole, turn: LeaderTurn): StartedTurn => ({
            requestId,
            input,
            coalesce,
            inserted: turn.inserted,
            queuePosition: turn.queuePosition,
            generation: turn.generation,
            startedAt,
            record: record(input, requestId, coalesce, startedAt, admission),
          })

          const sharable =
            coalescer.enabled &&
            input.coalesce !== false &&
            (input.mode === "wait" || coalescer.streamFanout) &&
            !bypassesCoalescing(input.options, input.conversation ?? own)
          // With REDIS_URL a thread turn is shared with the other replicas (a reconnect or a cancel
          // works on any of them), and so is a completion another replica's identical one may join.
          const adapterName = relay.enabled ? (yield* providers.resolve(body.provider, body.model)).name : ""
          const sharedAs = (bodyKey: string): RelayedTurn | undefined =>
            relay.enabled
              ? {
                  leader: requestId,
                  generationId: newGenerationId(),
                  owner: config.replicaId,
                  org: input.org,
                  threadId: input.threadId,
                  provider: adapterName,
                  model: body.model,
                  bodyKey,
                }
              : undefined
          const threadShared = input.threadId === null ? undefined : sharedAs("")
          if (!sharable && input.idempotencyKey === undefined) {
            return started(
              "bypass",
              yield* lead(input, actor, requestId, startedAt, admission, undefined, undefined, threadShared),
            )
          }
          // A reply fetched in one body has no tokens to stream: streaming requests never join it.
          const oneBody = streamsUpstream(input) ? "" : ":one-body"
          const keyAfter = (position: MessageId | null) =>
            input.conversation === undefined
              ? `${coalesceKey(input.org, input.threadId, position, body, turnKey(input, own))}${oneBody}`
              : `${conversationKey(input.org, input.conversation, body)}${oneBody}`
          const position = actor === undefined ? null : yield* positionOf(actor, body, keyAfter)
          const bodyKey = keyAfter(position)
          // An Idempotency-Key names one send wherever its thread has got to since: a late retry
          // finds its turn, and its body is compared without the thread's position.
          const key =
            input.idempotencyKey === undefined ? bodyKey : `idempotency:${input.org}:${input.idempotencyKey}`
          const sameBody = input.idempotencyKey === undefined ? bodyKey : keyAfter(null)
          const claim = coalescer.claim<StartError>(key, sameBody)
          if (claim._tag === "Follower") {
            if (claim.lead.bodyKey !== sameBody) {
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
            nameFollower(requestId, turn.generation)
            const role = Deferred.isDoneUnsafe(turn.generation.outcome) ? "cache_hit" : "follower"
            return started(role, turn)
          }
          // Across replicas (REDIS_URL): the first to claim the key leads; a leader here whose key
          // another replica holds follows that one's generation (and so do the followers here).
          const shared = sharedAs(sameBody)
          const remote = shared === undefined ? undefined : yield* relay.claim(key, shared)
          // The key outlives the generation by the TTL that fits how it ended. A leader that could
          // not start (a typed error or a defect) frees the key at once and hands its followers the
          // same answer. (It cannot be interrupted half way: see `start`.)
          const leadHere = lead(
            input,
            actor,
            requestId,
            startedAt,
            admission,
            (outcome) => {
              coalescer.settle(key, settledAs(outcome))
              if (shared !== undefined) relay.settleClaim(key, requestId, settledAs(outcome))
            },
            input.idempotencyKey === undefined ? key : undefined,
            shared ?? threadShared,
          )
          const followed =
            remote === undefined ? undefined : yield* followElsewhere(remote, key, sameBody, input)
          const turn = yield* (followed === undefined ? leadHere : Effect.succeed(followed)).pipe(
            Effect.onExit((exit) => {
              if (Exit.isSuccess(exit)) return Deferred.succeed(claim.lead.turn, exit.value)
              coalescer.abandon(key)
              if (shared !== undefined && followed === undefined)
                relay.settleClaim(key, requestId, "Cancelled")
              return Deferred.failCause(claim.lead.turn, exit.cause)
            }),
          )
          if (followed !== undefined) return started("follower", turn)
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
          // A thread turn's messages are stored before its reply is (only stateless completions have none).
          const inserted = yield* Deferred.await(turn.inserted!)
          return new TurnResult(
            {
              request_id: turn.requestId,
              user_message: inserted.userMessage,
              ...(inserted.inputMessages.some((m) => m.role === "tool")
                ? { tool_messages: inserted.inputMessages }
                : {}),
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

      /** The live generation a request of `org` follows (another org's is not found). */
      const liveFor = (org: OrgId, requestId: RequestId) =>
        Option.filter(
          Option.orElse(generations.byRequest(requestId), () =>
            Option.fromNullishOr(relay.copyOf(requestId)),
          ),
          (generation) => generation.org === org,
        )

      const notFound = (requestId: RequestId) =>
        new RequestNotFound({ message: `request ${requestId} not found` })

      const createThread = Effect.fn("Turns.createThread")(function* (org: OrgId, title: string | null) {
        const thread = yield* threads.create(org, title)
        threadActors.created(org, thread.thread_id)
        return thread
      })

      const attach = Effect.fn("Turns.attach")(function* (
        org: OrgId,
        threadId: ThreadId,
        requestId: RequestId,
      ) {
        // Only through its own thread (a stateless completion has none to be joined through).
        const live = Option.filter(liveFor(org, requestId), (generation) => generation.threadId === threadId)
        // Not here: with REDIS_URL, another replica may run it (its copy here is made).
        const elsewhere = Option.isSome(live) ? undefined : yield* relay.lookup(org, requestId)
        const copy =
          elsewhere === undefined || elsewhere.threadId !== threadId
            ? undefined
            : yield* relay.follow(elsewhere)
        if (copy !== undefined) relay.name(requestId, copy)
        const found = Option.isSome(live) ? live.value : copy
        if (found !== undefined) {
          const generation = found
          if (generation.listenerCount() >= config.maxListenersPerGeneration) {
            return yield* tooManyListeners(config.maxListenersPerGeneration)
          }
          const follower = generation.isListening(requestId) ? newRequestId() : requestId
          if (follower !== requestId) nameFollower(follower, generation)
          return { _tag: "Live", requestId: follower, generation } satisfies Attachment
        }
        const stored = yield* messages.findAssistantByRequest(org, requestId)
        if (Option.isNone(stored) || stored.value.message.thread_id !== threadId) {
          return yield* notFound(requestId)
        }
        return { _tag: "Stored", reply: stored.value } satisfies Attachment
      })

      const cancel = Effect.fn("Turns.cancel")(function* (
        org: OrgId,
        requestId: RequestId,
        scope: "request" | "generation",
      ) {
        const live = liveFor(org, requestId)
        if (Option.isSome(live) && !live.value.isEnded()) {
          const generation = live.value
          // A copy of another replica's generation is stopped by that replica (told below).
          if (scope === "request") yield* generation.cancelRequest(requestId)
          else if (!relay.isCopy(generation)) yield* generation.cancel
          // The other replicas drop what they hold of it (the owner: the request, or all of it).
          relay.cancel(org, requestId, generation.names[0]!, scope)
          return true
        }
        // With REDIS_URL: a request another replica serves (unless it is over).
        const elsewhere = Option.isSome(live) ? undefined : yield* relay.lookup(org, requestId)
        const stored = yield* messages.findAssistantByRequest(org, elsewhere?.leader ?? requestId)
        const over = Option.isSome(stored) && !["pending", "streaming"].includes(stored.value.message.status)
        if (elsewhere !== undefined && !over) {
          relay.cancel(org, requestId, elsewhere.leader, scope)
          return true
        }
        if (Option.isNone(stored)) return yield* notFound(requestId)
        // Already finished: nothing left to cancel.
        return false
      })

      // A cancel sent to another replica: this one applies it to the generation it runs, if it does.
      relay.onCancel((org, requestId, leader, scope) => {
        const generation = Option.getOrUndefined(
          Option.orElse(
            Option.filter(generations.byRequest(requestId), (g) => g.org === org),
            () => Option.filter(generations.byRequest(leader), (g) => g.org === org),
          ),
        )
        if (generation === undefined || generation.isEnded()) return
        forkInLayer(scope === "generation" ? generation.cancel : generation.cancelRequest(requestId))
      })

      return Turns.of({ start, complete, send, createThread, attach, cancel, drain: generations.drain })
    }),
  )
}
