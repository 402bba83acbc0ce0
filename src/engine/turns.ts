import { Context, Deferred, Effect, Layer } from "effect"
import { AppConfig } from "../config.ts"
import type { ChatRequest } from "../domain/chat.ts"
import { TurnResult } from "../domain/chat.ts"
import {
  ContentTooLarge,
  type ProviderNotConfigured,
  RequestCancelled,
  type ThreadNotFound,
  type UnknownModel,
  type UnknownProvider,
} from "../domain/errors.ts"
import { newRequestId, type OrgId, type ThreadId } from "../domain/ids.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import { Providers } from "../providers/providers.ts"
import { MessagesRepo } from "../store/messages-repo.ts"
import { RequestLog } from "../telemetry/request-log.ts"
import { Generations } from "./generations.ts"

export interface TurnInput {
  readonly org: OrgId
  readonly threadId: ThreadId
  readonly body: ChatRequest
}

export type TurnError =
  | ContentTooLarge
  | UnknownProvider
  | UnknownModel
  | ProviderNotConfigured
  | ThreadNotFound
  | RequestCancelled
  | ProviderError

/**
 * A chat turn: persist the user's message, run a generation for the reply, persist the reply.
 * The pacer (around the upstream call) and the coalescer (around `send`) slot in here.
 */
export class Turns extends Context.Service<
  Turns,
  {
    /** Waits for the whole reply. Interrupting the caller detaches it from the generation. */
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

      const send = Effect.fn("Turns.send")(function* (input: TurnInput) {
        const startedAt = performance.now()
        const requestId = newRequestId()
        const { body } = input
        if (body.content.length > config.maxContentChars) {
          return yield* new ContentTooLarge({
            message: `content is ${body.content.length} characters; the limit is ${config.maxContentChars} (MAX_CONTENT_CHARS)`,
          })
        }
        const adapter = yield* providers.resolve(body.provider, body.model)
        yield* Effect.annotateCurrentSpan({
          "gen_ai.provider.name": body.provider,
          "gen_ai.request.model": body.model,
        })
        const started = yield* messages.startTurn({
          org: input.org,
          threadId: input.threadId,
          requestId,
          content: body.content,
          provider: body.provider,
          model: body.model,
        })
        const generation = yield* generations.start({
          requestId,
          adapter,
          startedAt,
          assistantMessage: started.assistantMessage,
          request: {
            provider: adapter.name,
            model: body.model,
            messages: started.history,
            temperature: body.temperature,
            maxTokens: body.max_tokens,
          },
        })
        generation.attach(requestId)
        const outcome = yield* Deferred.await(generation.outcome).pipe(
          Effect.onInterrupt(() => generation.detach(requestId)),
        )
        const usage = outcome._tag === "Completed" ? outcome.usage : null
        requestLog.record({
          request_id: requestId,
          org_id: input.org,
          thread_id: input.threadId,
          provider: body.provider,
          model: body.model,
          coalesce: "leader",
          status: outcome._tag === "Completed" ? "ok" : outcome._tag === "Failed" ? "error" : "cancelled",
          error_code: outcome._tag === "Failed" ? outcome.error.code : null,
          queue_wait_ms: 0,
          ttft_ms: outcome.ttftMs,
          latency_ms: outcome.latencyMs,
          input_tokens: usage?.input_tokens ?? null,
          output_tokens: usage?.output_tokens ?? null,
        })
        if (outcome._tag === "Failed") return yield* Effect.fail(outcome.error)
        if (outcome._tag === "Cancelled") {
          return yield* new RequestCancelled({ message: `request ${requestId} was cancelled` })
        }
        return new TurnResult(
          {
            request_id: requestId,
            user_message: started.userMessage,
            assistant_message: outcome.message,
            coalesce: "leader",
            metrics: { queue_wait_ms: 0, ttft_ms: outcome.ttftMs, latency_ms: outcome.latencyMs },
          },
          { disableChecks: true },
        )
      })

      return Turns.of({ send })
    }),
  )
}
