import { Effect, Option, Predicate } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../config.ts"
import type { ThreadTurnRequest } from "../domain/chat.ts"
import { ImageTooLarge, ThreadNotFound } from "../domain/errors.ts"
import type { ThreadId } from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"
import { ThreadWithMessages } from "../domain/thread.ts"
import { Pacer } from "../engine/pacer.ts"
import { type TurnInput, Turns } from "../engine/turns.ts"
import { Providers } from "../providers/providers.ts"
import { MessagesRepo } from "../store/messages-repo.ts"
import { RequestLogRepo } from "../store/request-log-repo.ts"
import { ThreadsRepo } from "../store/threads-repo.ts"
import { summarize } from "../telemetry/performance.ts"
import { RequestLog } from "../telemetry/request-log.ts"
import { Api, NotReady } from "./api.ts"
import { BadRequestError, retryAfterHeader, toApiError } from "./errors.ts"
import { hasOpsAccess } from "./ops-guard.ts"
import { CurrentCaller, CurrentOrg } from "./org.ts"
import {
  holdsOnDisconnect,
  lastEventId,
  listenBody,
  sseResponse,
  storedReplyStream,
  turnStream,
} from "./stream.ts"
import { threadTurnOf } from "./thread-turn.ts"

export const ThreadsHandlers = HttpApiBuilder.group(
  Api,
  "threads",
  Effect.fn(function* (handlers) {
    const threads = yield* ThreadsRepo
    const messages = yield* MessagesRepo
    const turns = yield* Turns
    const { maxTitleChars, stalledWriteTimeoutMs, maxImageBytes } = yield* AppConfig

    /** Starts a streamed turn and answers with its reply stream (or the error of its start). */
    const startStream = (input: TurnInput, headers: Readonly<Record<string, string | undefined>>) =>
      turns.start(input).pipe(
        // A raw response: HttpApi sends an HttpServerResponse as it is.
        Effect.map(
          (turn) => turnStream(turn, stalledWriteTimeoutMs, holdsOnDisconnect(headers)) as unknown as string,
        ),
        withRetryAfter,
        Effect.mapError(toApiError),
      )

    return handlers.handleAll({
      createThread: Effect.fn("http.createThread")(function* ({ payload }) {
        const org = yield* CurrentOrg
        const title = payload?.title ?? null
        if (title !== null && title.length > maxTitleChars) {
          return yield* new BadRequestError({
            error: {
              code: "invalid_request",
              message: `invalid body: title: is ${title.length} characters; the limit is ${maxTitleChars} (MAX_TITLE_CHARS)`,
            },
          })
        }
        return yield* turns.createThread(org, title).pipe(Effect.mapError(toApiError))
      }),
      listThreads: Effect.fn("http.listThreads")(function* ({ query }) {
        const org = yield* CurrentOrg
        return { threads: yield* threads.list(org, query.limit ?? 100).pipe(Effect.mapError(toApiError)) }
      }),
      getThread: Effect.fn("http.getThread")(function* ({ params }) {
        const org = yield* CurrentOrg
        const thread = yield* threads.find(org, params.thread_id).pipe(Effect.mapError(toApiError))
        if (Option.isNone(thread)) {
          return yield* toApiError(new ThreadNotFound({ message: `thread ${params.thread_id} not found` }))
        }
        const list = yield* messages.listByThread(org, params.thread_id).pipe(Effect.mapError(toApiError))
        return new ThreadWithMessages({ ...thread.value, messages: list }, { disableChecks: true })
      }),
      sendMessage: Effect.fn("http.sendMessage")(function* ({ params, payload }) {
        const caller = yield* CurrentCaller
        const request = yield* HttpServerRequest.HttpServerRequest
        const stream = wantsEventStream(request.headers.accept)
        const input = yield* turnInput(
          request.headers,
          caller,
          params.thread_id,
          payload,
          stream ? "stream" : "wait",
          maxImageBytes,
        )
        if (stream) return yield* startStream(input, request.headers)
        return yield* turns.send(input).pipe(withRetryAfter, Effect.mapError(toApiError))
      }),
      streamMessage: Effect.fn("http.streamMessage")(function* ({ params, payload }) {
        const caller = yield* CurrentCaller
        const request = yield* HttpServerRequest.HttpServerRequest
        const input = yield* turnInput(
          request.headers,
          caller,
          params.thread_id,
          payload,
          "stream",
          maxImageBytes,
        )
        return yield* startStream(input, request.headers)
      }),
      reattach: Effect.fn("http.reattach")(function* ({ params }) {
        const org = yield* CurrentOrg
        const request = yield* HttpServerRequest.HttpServerRequest
        const afterId = lastEventId(request.headers["last-event-id"])
        const found = yield* turns
          .attach(org, params.thread_id, params.request_id)
          .pipe(Effect.mapError(toApiError))
        // A raw response: HttpApi sends an HttpServerResponse as it is.
        return (found._tag === "Live"
          ? sseResponse(
              listenBody(
                found.requestId,
                found.generation,
                "follower",
                afterId,
                () => {},
                stalledWriteTimeoutMs,
                0,
                holdsOnDisconnect(request.headers),
              ),
            )
          : storedReplyStream(
              params.request_id,
              found.reply,
              afterId,
              stalledWriteTimeoutMs,
            )) as unknown as string
      }),
      cancel: Effect.fn("http.cancel")(function* ({ params, query }) {
        const org = yield* CurrentOrg
        const cancelled = yield* turns
          .cancel(org, params.request_id, query.scope === "generation" ? "generation" : "request")
          .pipe(Effect.mapError(toApiError))
        return { cancelled }
      }),
    })
  }),
)

/**
 * A turn as its body (thread-turn.ts: its messages, tools) and headers shape it: `Idempotency-Key`
 * (same key and body → the same turn) and `x-dac-coalesce: off` (never share an upstream call with
 * identical requests).
 */
const turnInput = (
  headers: Readonly<Record<string, string | undefined>>,
  caller: Caller,
  threadId: ThreadId,
  payload: ThreadTurnRequest,
  mode: TurnInput["mode"],
  maxImageBytes: number,
) =>
  threadTurnOf(payload, maxImageBytes).pipe(
    Effect.map(
      ({ body, messages, options }): TurnInput => ({
        org: caller.org,
        caller,
        threadId,
        body,
        messages,
        options,
        mode,
        idempotencyKey: headers["idempotency-key"] || undefined,
        coalesce: headers["x-dac-coalesce"]?.toLowerCase() !== "off",
      }),
    ),
    Effect.mapError((error) => (error instanceof ImageTooLarge ? toApiError(error) : error)),
  )

/** The refusals that carry a `retry-after`: the pacer's full queue and the key limits. */
const retryAfterTags = new Set([
  "PacerQueueFull",
  "KeyRateLimited",
  "KeyConcurrencyLimited",
  "KeyBudgetExhausted",
])

interface RetryAfterError {
  readonly _tag: string
  readonly code: string
  readonly message: string
  readonly retryAfterMs: number
}

const hasRetryAfter = <E>(error: E): error is E & RetryAfterError =>
  Predicate.hasProperty(error, "_tag") && retryAfterTags.has(error._tag as string)

/** A 429 with `retry-after` (seconds), which an error body alone cannot carry. */
const withRetryAfter = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, Exclude<E, RetryAfterError>, R> =>
  Effect.catchIf(effect, hasRetryAfter, (error) =>
    Effect.succeed(
      HttpServerResponse.jsonUnsafe(
        { error: { code: error.code, message: error.message, retryable: true } },
        { status: 429, headers: retryAfterHeader(error.retryAfterMs) },
      ) as unknown as A,
    ),
  ) as Effect.Effect<A, Exclude<E, RetryAfterError>, R>

const wantsEventStream = (accept: string | undefined) => accept?.includes("text/event-stream") === true

export const MetricsHandlers = HttpApiBuilder.group(
  Api,
  "metrics",
  Effect.fn(function* (handlers) {
    const requestLog = yield* RequestLog
    return handlers.handleAll({
      performance: Effect.fn("http.performance")(function* ({ query }) {
        const org = yield* CurrentOrg
        const provider = query.provider
        return summarize(
          requestLog.lastN(
            query.last_n ?? 100,
            (entry) => entry.org_id === org && (provider === undefined || entry.provider === provider),
          ),
        )
      }),
    })
  }),
)

export const UsageHandlers = HttpApiBuilder.group(
  Api,
  "usage",
  Effect.fn(function* (handlers) {
    const repo = yield* RequestLogRepo
    return handlers.handleAll({
      usage: Effect.fn("http.usage")(function* ({ query }) {
        const org = yield* CurrentOrg
        const days = query.days ?? 7
        const usage = yield* repo.usageByDay(org, days).pipe(Effect.mapError(toApiError))
        return { org_id: org, days, usage }
      }),
    })
  }),
)

/** An error and its causes, down to the socket's own words (`connect ECONNREFUSED …`), for the log. */
const causeChain = (error: unknown): string => {
  const parts: Array<string> = []
  for (let at: unknown = error; at !== undefined && parts.length < 5; ) {
    parts.push(String(at))
    at = Predicate.hasProperty(at, "cause") ? at.cause : undefined
  }
  return parts.join(" ← ")
}

/** A store that does not answer `SELECT 1` this soon is not ready: a probe must get an answer. */
const readyTimeoutMs = 2_000

export const SystemHandlers = HttpApiBuilder.group(
  Api,
  "system",
  Effect.fn(function* (handlers) {
    const sql = yield* SqlClient.SqlClient
    const providers = yield* Providers
    const pacer = yield* Pacer
    return handlers.handleAll({
      health: () => Effect.succeed({ status: "ok" as const }),
      // Migrations run before the server listens, so a reachable database means a migrated one.
      ready: () =>
        Effect.gen(function* () {
          // With OPS_TOKEN set, a caller without it learns ready or not, nothing more.
          const details = yield* hasOpsAccess
          return yield* sql`SELECT 1`.pipe(
            Effect.timeout(readyTimeoutMs),
            Effect.map(() =>
              details
                ? {
                    status: "ready" as const,
                    store: "ok" as const,
                    providers: providers.status,
                    pacer: pacer.state(),
                  }
                : { status: "ready" as const },
            ),
            // The driver's words name hosts and ports: the log gets them, the answer does not.
            Effect.catch((error) =>
              Effect.logWarning("store not ready", { error: causeChain(error) }).pipe(
                Effect.andThen(
                  Effect.fail(
                    new NotReady({
                      status: "unavailable",
                      ...(details
                        ? {
                            store: "unavailable" as const,
                            providers: providers.status,
                            pacer: pacer.state(),
                          }
                        : {}),
                      error: {
                        code: "store_unavailable",
                        message: "the store is unavailable",
                        retryable: true,
                      },
                    }),
                  ),
                ),
              ),
            ),
          )
        }),
    })
  }),
)
