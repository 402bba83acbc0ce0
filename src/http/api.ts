import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { ThreadTurnRequest, TurnResult } from "../domain/chat.ts"
import { IdempotencyKey, RequestId, ThreadId } from "../domain/ids.ts"
import { storableText } from "../domain/text.ts"
import { Thread, ThreadWithMessages } from "../domain/thread.ts"
import { AdminApi } from "./admin-api.ts"
import {
  BadGatewayError,
  BadRequestError,
  ConflictError,
  ErrorDetail,
  GatewayTimeoutError,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  TooManyRequestsError,
  UnavailableError,
} from "./errors.ts"
import { OrgScope } from "./org.ts"

/** Its length is bounded by `MAX_TITLE_CHARS`, which the handler checks (configuration is not static). */
export const CreateThread = Schema.Struct({
  title: Schema.optional(Schema.NullOr(Schema.String.check(storableText))),
})

export const ThreadList = Schema.Struct({ threads: Schema.Array(Thread) })

const threadParams = { thread_id: ThreadId }

/** The headers a turn reads; `x-org-id` is the OrgScope middleware's. */
const turnHeaders = {
  "idempotency-key": Schema.optional(IdempotencyKey),
  "x-dac-coalesce": Schema.optional(Schema.String),
  "x-dac-on-disconnect": Schema.optional(Schema.Literals(["hold", "cancel"])),
}

/** A reply stream: `text/event-stream` events as described in the README. */
export const EventStream = Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/event-stream" }))

export const CancelResult = Schema.Struct({ cancelled: Schema.Boolean })

/** Errors a turn can end in: bad input, unknown thread, the pacer's 429 and every upstream failure. */
const turnErrors = [
  BadRequestError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  TooManyRequestsError,
  BadGatewayError,
  UnavailableError,
  GatewayTimeoutError,
  InternalError,
] as const

export class ThreadsApi extends HttpApiGroup.make("threads")
  .add(
    // The router ignores a trailing slash, so this also serves `POST /api/threads/`.
    HttpApiEndpoint.post("createThread", "/threads", {
      // The `Null` member makes an empty body acceptable: it creates an untitled thread.
      payload: [CreateThread, Schema.Null],
      success: Thread.pipe(HttpApiSchema.status(201)),
      error: [BadRequestError, PayloadTooLargeError, UnavailableError],
    }),
    HttpApiEndpoint.get("listThreads", "/threads", {
      query: {
        limit: Schema.optional(
          Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1000 })),
        ),
      },
      success: ThreadList,
      error: [BadRequestError, UnavailableError],
    }),
    HttpApiEndpoint.get("getThread", "/threads/:thread_id", {
      params: threadParams,
      success: ThreadWithMessages,
      error: [BadRequestError, NotFoundError, UnavailableError],
    }),
    // With `Accept: text/event-stream` this answers with the reply stream instead.
    HttpApiEndpoint.post("sendMessage", "/threads/:thread_id/messages", {
      params: threadParams,
      headers: turnHeaders,
      payload: ThreadTurnRequest,
      success: [TurnResult, EventStream],
      error: turnErrors,
    }),
    HttpApiEndpoint.post("streamMessage", "/threads/:thread_id/messages/stream", {
      params: threadParams,
      headers: turnHeaders,
      payload: ThreadTurnRequest,
      success: EventStream,
      error: turnErrors,
    }),
    // Honours `Last-Event-ID`: resumes after that event.
    HttpApiEndpoint.get("reattach", "/threads/:thread_id/stream/:request_id", {
      params: { thread_id: ThreadId, request_id: RequestId },
      success: EventStream,
      error: [BadRequestError, NotFoundError, TooManyRequestsError, UnavailableError],
    }),
    HttpApiEndpoint.post("cancel", "/threads/cancel/:request_id", {
      params: { request_id: RequestId },
      query: { scope: Schema.optional(Schema.Literals(["request", "generation"])) },
      success: CancelResult,
      error: [BadRequestError, NotFoundError, UnavailableError],
    }),
  )
  .middleware(OrgScope)
  .prefix("/api")
  .annotateMerge(OpenApi.annotations({ title: "Threads", description: "Chat threads and their turns" })) {}

const TimingPercentiles = Schema.Struct({
  p50: Schema.NullOr(Schema.Number),
  p95: Schema.NullOr(Schema.Number),
  p99: Schema.NullOr(Schema.Number),
})

export const PerformanceSummary = Schema.Struct({
  count: Schema.Number,
  ttft_ms: TimingPercentiles,
  latency_ms: TimingPercentiles,
  queue_wait_ms: TimingPercentiles,
  coalesce: Schema.Struct({
    leaders: Schema.Number,
    followers: Schema.Number,
    cache_hits: Schema.Number,
    bypass: Schema.Number,
  }),
  error_rate: Schema.Number,
})

/** The org's recent requests, summarised (another org's requests never count). */
export class MetricsApi extends HttpApiGroup.make("metrics")
  .add(
    HttpApiEndpoint.get("performance", "/metrics/performance", {
      query: {
        last_n: Schema.optional(
          Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 10_000 })),
        ),
        provider: Schema.optional(Schema.String),
      },
      success: PerformanceSummary,
      error: BadRequestError,
    }),
  )
  .middleware(OrgScope)
  .prefix("/api") {}

export const UsageDay = Schema.Struct({
  /** `YYYY-MM-DD`, UTC. */
  day: Schema.String,
  provider: Schema.NullOr(Schema.String),
  model: Schema.NullOr(Schema.String),
  requests: Schema.Number,
  input_tokens: Schema.Number,
  output_tokens: Schema.Number,
})

export const UsageReport = Schema.Struct({
  org_id: Schema.String,
  days: Schema.Number,
  /** Newest day first; a day, provider and model with no request has no row. */
  usage: Schema.Array(UsageDay),
})

/** The org's requests and tokens per UTC day, provider and model, from the request log. */
export class UsageApi extends HttpApiGroup.make("usage")
  .add(
    HttpApiEndpoint.get("usage", "/usage", {
      query: {
        days: Schema.optional(
          Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 90 })),
        ),
      },
      success: UsageReport,
      error: [BadRequestError, UnavailableError],
    }),
  )
  .middleware(OrgScope)
  .prefix("/api")
  .annotateMerge(OpenApi.annotations({ title: "Usage", description: "Requests and tokens per day" })) {}

export const HealthStatus = Schema.Struct({ status: Schema.Literal("ok") })
/** The details of `/ready`: left out when OPS_TOKEN is set and the caller does not send it. */
const readiness = {
  providers: Schema.optional(
    Schema.Array(Schema.Struct({ name: Schema.String, configured: Schema.Boolean })),
  ),
  /** Each provider's pacer right now: bucket tokens, calls in flight, requests queued, pause. */
  pacer: Schema.optional(
    Schema.Array(
      Schema.Struct({
        provider: Schema.String,
        tokens: Schema.Number,
        inFlight: Schema.Number,
        queued: Schema.Number,
        concurrencyLimit: Schema.Number,
        pausedUntil: Schema.NullOr(Schema.Number),
      }),
    ),
  ),
  /** With REDIS_URL: this replica's id (REPLICA_ID). */
  replica: Schema.optional(Schema.String),
  /** With REDIS_URL: whether Redis answers; `down` means every limit is at its 1/REPLICA_COUNT share. */
  redis: Schema.optional(
    Schema.Struct({
      state: Schema.Literals(["up", "down"]),
      since: Schema.Number,
      outages: Schema.Number,
    }),
  ),
  /** With REDIS_URL: the shared budget of each provider as this replica last read it. */
  shared: Schema.optional(
    Schema.Struct({
      replicas: Schema.Number,
      leaseMs: Schema.Number,
      limits: Schema.Literals(["shared", "fallback"]),
      pacer: Schema.Array(
        Schema.Struct({
          provider: Schema.String,
          mode: Schema.Literals(["shared", "fallback"]),
          tokens: Schema.Number,
          inFlight: Schema.Number,
          concurrencyLimit: Schema.Number,
          pausedUntil: Schema.NullOr(Schema.Number),
          readAgoMs: Schema.NullOr(Schema.Number),
        }),
      ),
      cost: Schema.Struct({ roundTrips: Schema.Number, meanMs: Schema.Number, slotsPerTrip: Schema.Number }),
    }),
  ),
}

/** Ready: the store answers. It says `ok`, never where the store is or what its driver said. */
export const ReadyStatus = Schema.Struct({
  status: Schema.Literal("ready"),
  store: Schema.optional(Schema.Literal("ok")),
  ...readiness,
})

/**
 * Not ready (503): the same report, with the store `unavailable`, and the `error` every error
 * body has. Why the store failed goes to the log, not to whoever can reach `/ready`.
 */
export class NotReady extends Schema.Error<NotReady>("NotReady")(
  {
    status: Schema.Literal("unavailable"),
    store: Schema.optional(Schema.Literal("unavailable")),
    ...readiness,
    error: ErrorDetail,
  },
  { httpApiStatus: 503 },
) {}

export class SystemApi extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("health", "/health", { success: HealthStatus }),
  HttpApiEndpoint.get("ready", "/ready", { success: ReadyStatus, error: NotReady }),
) {}

export class Api extends HttpApi.make("dac")
  .add(ThreadsApi)
  .add(MetricsApi)
  .add(UsageApi)
  .add(SystemApi)
  .add(AdminApi)
  // Report every problem of a payload at once, not just the first.
  .annotate(HttpApi.PayloadParseOptions, { errors: "all" })
  .annotateMerge(
    OpenApi.annotations({
      title: "DAC gateway",
      description:
        "Chat threads, streamed replies, and a pacer, coalescer and fan-out in front of LLM providers.",
    }),
  ) {}
