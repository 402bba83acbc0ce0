import { Context, Deferred, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { type GenerationId, newGenerationId, type RequestId } from "../domain/ids.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import type { Message, Usage } from "../domain/thread.ts"
import type { ProviderAdapter, ProviderRequest } from "../providers/provider.ts"
import { MessagesRepo } from "../store/messages-repo.ts"

/** How a generation ended; the assistant message is already persisted in that state. */
export type GenerationOutcome =
  | {
      readonly _tag: "Completed"
      readonly message: Message
      readonly ttftMs: number | null
      readonly latencyMs: number
      readonly usage: Usage | null
    }
  | {
      readonly _tag: "Failed"
      readonly message: Message
      readonly error: ProviderError
      readonly ttftMs: number | null
      readonly latencyMs: number
    }
  | {
      readonly _tag: "Cancelled"
      readonly message: Message
      readonly ttftMs: number | null
      readonly latencyMs: number
    }

export interface GenerationSpec {
  readonly requestId: RequestId
  readonly adapter: ProviderAdapter
  readonly request: ProviderRequest
  /** The `pending` assistant message this generation fills in. */
  readonly assistantMessage: Message
  /** `performance.now()` when the request arrived: latency is measured from there. */
  readonly startedAt: number
}

/**
 * One upstream call and everything it produces. Its fiber lives in the Generations scope, not in
 * the scope of the request that started it: requests attach and detach, and only when the last
 * one detaches is the fiber interrupted (which aborts the upstream request).
 */
export interface Generation {
  readonly id: GenerationId
  readonly outcome: Deferred.Deferred<GenerationOutcome>
  /** Counts a request as listening. */
  readonly attach: (requestId: RequestId) => void
  /** Stops counting it; interrupts the generation when no request is left. */
  readonly detach: (requestId: RequestId) => Effect.Effect<void>
  /** Stops the generation for every listener. */
  readonly cancel: Effect.Effect<void>
}

export class Generations extends Context.Service<
  Generations,
  {
    readonly start: (spec: GenerationSpec) => Effect.Effect<Generation>
    readonly byRequest: (requestId: RequestId) => Option.Option<Generation>
  }
>()("dac/engine/Generations") {
  static readonly layer = Layer.effect(
    Generations,
    Effect.gen(function* () {
      const messages = yield* MessagesRepo
      const scope = yield* Effect.scope
      const byRequestId = new Map<RequestId, Generation>()

      const start = Effect.fn("Generations.start")(function* (spec: GenerationSpec) {
        const outcome = yield* Deferred.make<GenerationOutcome>()
        const attached = new Set<RequestId>()
        let text = ""
        let ttftMs: number | null = null
        let usage: Usage | null = null
        let finishReason: string | null = null

        const consume = spec.adapter.stream(spec.request).pipe(
          Stream.runForEach((event) => {
            switch (event._tag) {
              case "FirstByte":
                ttftMs = performance.now() - spec.startedAt
                break
              case "TextDelta":
                text += event.text
                break
              case "Finish":
                finishReason = event.reason
                usage = event.usage
                break
            }
            return Effect.void
          }),
        )

        // Runs once however the generation ends (done, failed, interrupted), uninterruptibly, so the
        // assistant message never stays `pending` while the process lives.
        const settle = (exit: Exit.Exit<void, ProviderError>) =>
          Effect.gen(function* () {
            const latencyMs = performance.now() - spec.startedAt
            let result: GenerationOutcome
            if (Exit.isSuccess(exit)) {
              const message = yield* messages.finishTurn(spec.assistantMessage, {
                content: text,
                status: "complete",
                usage,
                finishReason: finishReason ?? "stop",
                errorCode: null,
              })
              result = { _tag: "Completed", message, ttftMs, latencyMs, usage }
            } else {
              const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
              const message = yield* messages.finishTurn(spec.assistantMessage, {
                content: text,
                status: error ? "failed" : "cancelled",
                usage,
                finishReason: null,
                errorCode: error?.code ?? null,
              })
              result = error
                ? { _tag: "Failed", message, error, ttftMs, latencyMs }
                : { _tag: "Cancelled", message, ttftMs, latencyMs }
            }
            byRequestId.delete(spec.requestId)
            yield* Deferred.succeed(outcome, result)
          })

        const fiber = yield* consume.pipe(
          Effect.onExit(settle),
          Effect.forkIn(scope, { startImmediately: true }),
        )

        const generation: Generation = {
          id: newGenerationId(),
          outcome,
          attach: (requestId) => {
            attached.add(requestId)
          },
          detach: (requestId) =>
            Effect.suspend(() => {
              attached.delete(requestId)
              return attached.size === 0 ? Fiber.interrupt(fiber) : Effect.void
            }),
          cancel: Fiber.interrupt(fiber),
        }
        byRequestId.set(spec.requestId, generation)
        return generation
      })

      return Generations.of({
        start,
        byRequest: (requestId) => Option.fromNullishOr(byRequestId.get(requestId)),
      })
    }),
  )
}
