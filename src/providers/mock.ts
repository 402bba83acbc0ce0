import { Effect, Stream } from "effect"
import type { MockSettings } from "../config.ts"
import { StreamFailed } from "../domain/provider-errors.ts"
import {
  FirstByte,
  finish,
  type ProviderAdapter,
  type ProviderEvent,
  type ProviderRequest,
  textDelta,
} from "./provider.ts"

/** The mock's models: a fast normal stream, one that fails half way, one that never ends until interrupted. */
export const mockModels = {
  fast: "faststream-ttft",
  failing: "failing-midstream",
  endless: "never-ending",
} as const

const words = ["Hello", " from", " the", " DAC", " mock", " provider", "."]

/** The text a mock stream of `tokens` tokens yields: tests compare replies against it. */
export const mockReplyText = (tokens: number): string =>
  Array.from({ length: tokens }, (_, i) => words[i % words.length]).join("")

const estimateTokens = (request: ProviderRequest) =>
  request.messages.reduce((total, message) => total + Math.ceil(message.content.length / 4), 0)

/**
 * An in-process provider with no network: first token after `ttftMs`, then one every
 * `tokenIntervalMs`. Timing uses Effect's clock, so interruption stops it at once.
 */
export const makeMockProvider = (settings: MockSettings): ProviderAdapter => {
  const tokenStream = (request: ProviderRequest, tokens: number): Stream.Stream<ProviderEvent> =>
    Stream.range(0, tokens - 1).pipe(
      Stream.mapEffect((i) =>
        (i === 0 || settings.tokenIntervalMs === 0
          ? Effect.void
          : Effect.sleep(settings.tokenIntervalMs)
        ).pipe(Effect.as(textDelta(words[i % words.length]!))),
      ),
      Stream.concat(
        Stream.succeed(finish("stop", { input_tokens: estimateTokens(request), output_tokens: tokens })),
      ),
    )

  const stream = (request: ProviderRequest): Stream.Stream<ProviderEvent, StreamFailed> => {
    const tokens = Math.min(settings.tokens, request.maxTokens ?? settings.tokens)
    const firstByte = Stream.fromEffect(Effect.sleep(settings.ttftMs).pipe(Effect.as(FirstByte)))
    switch (request.model) {
      case mockModels.failing: {
        const half = Math.max(1, Math.floor(tokens / 2))
        return firstByte.pipe(
          Stream.concat(tokenStream(request, half).pipe(Stream.filter((event) => event._tag !== "Finish"))),
          Stream.concat(
            Stream.fail(new StreamFailed({ provider: "mock", message: "mock upstream failed mid-stream" })),
          ),
        )
      }
      case mockModels.endless:
        return firstByte.pipe(
          Stream.concat(
            Stream.fromEffectRepeat(
              Effect.sleep(Math.max(1, settings.tokenIntervalMs)).pipe(Effect.as(textDelta(" and"))),
            ),
          ),
        )
      default:
        return firstByte.pipe(Stream.concat(tokenStream(request, tokens)))
    }
  }

  return { name: "mock", models: Object.values(mockModels), stream }
}
