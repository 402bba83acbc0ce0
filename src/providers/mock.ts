import { Effect } from "effect"
import type { MockSettings } from "../config.ts"
import { textOf } from "../domain/content.ts"
import { StreamFailed } from "../domain/provider-errors.ts"
import { mockToolTurn } from "./mock-tools.ts"
import {
  type EventListener,
  FirstByte,
  finish,
  makeAdapter,
  type ProviderAdapter,
  type ProviderRequest,
  textDelta,
} from "./provider.ts"

/**
 * The mock's models: a fast normal stream, one that fails half way, one that never ends until
 * interrupted (or, given `max_tokens`, ends after that many tokens with finish `length`), and one
 * that calls tools (mock-tools.ts).
 */
export const mockModels = {
  fast: "faststream-ttft",
  failing: "failing-midstream",
  endless: "never-ending",
  tools: "tools",
} as const

const words = ["Hello", " from", " the", " DAC", " mock", " provider", "."]

/** The text a mock stream of `tokens` tokens yields: tests compare replies against it. */
export const mockReplyText = (tokens: number): string =>
  Array.from({ length: tokens }, (_, i) => words[i % words.length]).join("")

const estimateTokens = (request: ProviderRequest) =>
  request.messages.reduce((total, message) => total + Math.ceil(textOf(message.content).length / 4), 0)

/**
 * An in-process provider with no network: first token after `ttftMs`, then one every
 * `tokenIntervalMs`. Timing uses Effect's clock, so interruption stops it at once.
 */
export const makeMockProvider = (settings: MockSettings): ProviderAdapter => {
  // Even back to back, tokens come one per turn of the scheduler, as a real upstream's arrive one
  // per socket read: listeners get to run between them.
  const pause = (ms: number) => (ms === 0 ? Effect.yieldNow : Effect.sleep(ms))

  /** `tokens` tokens, the first at once and then one per interval. */
  const tokens = (count: number, onEvent: EventListener) =>
    Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.andThen(
          i === 0 ? Effect.void : pause(settings.tokenIntervalMs),
          Effect.sync(() => onEvent(textDelta(words[i % words.length]!))),
        ),
      { discard: true },
    )

  const run = (request: ProviderRequest, onEvent: EventListener): Effect.Effect<void, StreamFailed> => {
    const count = Math.min(settings.tokens, request.maxTokens ?? settings.tokens)
    const firstByte = Effect.andThen(
      Effect.sleep(settings.ttftMs),
      Effect.sync(() => onEvent(FirstByte)),
    )
    switch (request.model) {
      case mockModels.tools: {
        const turn = mockToolTurn(request)
        const usage = { input_tokens: estimateTokens(request), output_tokens: turn.events.length }
        return firstByte.pipe(
          Effect.andThen(
            Effect.forEach(
              turn.events,
              (event, i) =>
                Effect.andThen(
                  i === 0 ? Effect.void : pause(settings.tokenIntervalMs),
                  Effect.sync(() => onEvent(event)),
                ),
              { discard: true },
            ),
          ),
          Effect.andThen(Effect.sync(() => onEvent(finish(turn.finish, usage)))),
        )
      }
      case mockModels.failing:
        return firstByte.pipe(
          Effect.andThen(tokens(Math.max(1, Math.floor(count / 2)), onEvent)),
          Effect.andThen(
            Effect.fail(new StreamFailed({ provider: "mock", message: "mock upstream failed mid-stream" })),
          ),
        )
      case mockModels.endless: {
        const endless = Effect.andThen(
          Effect.sleep(Math.max(1, settings.tokenIntervalMs)),
          Effect.sync(() => onEvent(textDelta(" and"))),
        )
        // Endless unless the request caps it: then it stops as a real model does at the cap.
        if (request.maxTokens === undefined) return firstByte.pipe(Effect.andThen(Effect.forever(endless)))
        const maxTokens = Math.max(1, request.maxTokens)
        return firstByte.pipe(
          Effect.andThen(Effect.repeat(endless, { times: maxTokens - 1 })),
          Effect.andThen(
            Effect.sync(() =>
              onEvent(finish("length", { input_tokens: estimateTokens(request), output_tokens: maxTokens })),
            ),
          ),
        )
      }
      default:
        return firstByte.pipe(
          Effect.andThen(tokens(count, onEvent)),
          Effect.andThen(
            Effect.sync(() =>
              onEvent(finish("stop", { input_tokens: estimateTokens(request), output_tokens: count })),
            ),
          ),
        )
    }
  }

  return makeAdapter("mock", run, Object.values(mockModels))
}
