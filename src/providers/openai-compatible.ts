import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import { StreamFailed } from "../domain/provider-errors.ts"
import type { Usage } from "../domain/thread.ts"
import { parseJson, sseOrJson, unparseable, usageOf } from "./decode.ts"
import { type MakeDecoder, makeHttpAdapter } from "./http.ts"
import { errorFromStream, truncated } from "./http-errors.ts"
import { finish, type ProviderRequest, textDelta } from "./provider.ts"

/**
 * OpenAI Chat Completions (`POST {base}/chat/completions`, `stream: true`), spoken by OpenAI,
 * Perplexity and OpenRouter, each with its own quirks:
 * - OpenAI sends usage only when asked (`stream_options.include_usage`), in a last chunk with
 *   empty `choices`, then `[DONE]`; its newer models want `max_completion_tokens`.
 * - Perplexity sends cumulative usage in every chunk and no `[DONE]`: the body just ends.
 * - OpenRouter sends `: OPENROUTER PROCESSING` comments while it waits, and reports upstream
 *   failures as a chunk with an `error` field inside the 200 stream.
 */

interface Quirks {
  readonly maxTokensField: "max_tokens" | "max_completion_tokens"
  readonly askForUsage: boolean
}

const quirksOf = (provider: ProviderName): Quirks => {
  switch (provider) {
    case "perplexity":
      // Usage already rides on every chunk; stream_options is an OpenAI extension it need not accept.
      return { maxTokensField: "max_tokens", askForUsage: false }
    case "openrouter":
      return { maxTokensField: "max_tokens", askForUsage: true }
    default:
      return { maxTokensField: "max_completion_tokens", askForUsage: true }
  }
}

export const chatCompletionsBody = (provider: ProviderName, request: ProviderRequest) => {
  const quirks = quirksOf(provider)
  return {
    model: request.model,
    messages: request.messages.map(({ role, content }) => ({ role, content })),
    stream: request.stream !== false,
    ...(quirks.askForUsage && request.stream !== false ? { stream_options: { include_usage: true } } : {}),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.maxTokens === undefined ? {} : { [quirks.maxTokensField]: request.maxTokens }),
    ...(request.topP === undefined ? {} : { top_p: request.topP }),
    ...(request.stop === undefined ? {} : { stop: request.stop }),
  }
}

/** The fields of a chunk (or of a whole non-streamed completion) that DAC reads. */
interface Completion {
  readonly choices?: ReadonlyArray<{
    readonly index?: number
    readonly delta?: { readonly content?: unknown } | null
    readonly message?: { readonly content?: unknown } | null
    readonly finish_reason?: unknown
  }>
  readonly usage?: { readonly prompt_tokens?: unknown; readonly completion_tokens?: unknown } | null
  readonly error?: unknown
  readonly type?: unknown
}

/** Decodes one provider's Chat Completions stream; `secret` is cut from error messages. */
export const chatCompletionsDecoder = (provider: ProviderName, secret: string): MakeDecoder =>
  sseOrJson(provider, (sink) => {
    let finishReason: string | undefined
    // Perplexity repeats cumulative usage in every chunk: the last one seen is the total, never a sum.
    let usage: Usage | null = null
    let done = false

    /** Takes in one chunk (or whole completion), handing its text to `emit`. */
    const read = (chunk: Completion, field: "delta" | "message", emit: (text: string) => void) => {
      if (chunk.usage) usage = usageOf(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
      if (!Array.isArray(chunk.choices)) return
      for (const choice of chunk.choices) {
        // DAC asks for one choice; a provider that numbers them still puts the reply at index 0.
        if (
          typeof choice !== "object" ||
          choice === null ||
          (choice.index !== undefined && choice.index !== 0)
        ) {
          continue
        }
        const content = choice[field]?.content
        if (typeof content === "string" && content.length > 0) emit(content)
        if (typeof choice.finish_reason === "string") finishReason = choice.finish_reason
      }
    }
    const emitText = (text: string) => sink.emit(textDelta(text))

    const complete = () => {
      done = true
      if (finishReason === undefined) return sink.fail(truncated(provider, "its finish_reason"))
      sink.emit(finish(finishReason, usage))
    }

    return {
      event: (_event, data) => {
        if (done) return
        if (data === "[DONE]") return complete()
        const chunk = parseJson(data)
        if (!Predicate.isObject(chunk)) return sink.fail(unparseable(provider, data))
        const completion = chunk as Completion
        if (completion.error !== undefined && completion.error !== null) {
          return sink.fail(errorFromStream(provider, completion.error, secret))
        }
        if (completion.choices === undefined && typeof completion.type === "string") {
          // e.g. `response.created`: the endpoint speaks the Responses API, which DAC does not.
          return sink.fail(
            new StreamFailed({
              provider,
              message: `expected Chat Completions chunks, got a "${completion.type}" event`,
            }),
          )
        }
        read(completion, "delta", emitText)
      },
      end: () => {
        if (!done) complete()
      },
      json: (value) => {
        if (!Predicate.isObject(value)) return sink.fail(unparseable(provider, value))
        const completion = value as Completion
        if (completion.error !== undefined && completion.error !== null) {
          return sink.fail(errorFromStream(provider, completion.error, secret))
        }
        const texts: Array<string> = []
        read(completion, "message", (text) => texts.push(text))
        if (texts.length > 0) emitText(texts.join(""))
        complete()
      },
    }
  })

/** The adapter of one OpenAI-compatible provider (`settings.name` picks its quirks). */
export const makeOpenAiCompatibleAdapter = makeHttpAdapter({
  span: "OpenAiCompatible",
  headers: (key) => ({ authorization: `Bearer ${key}` }),
  request: (request, provider) => ({
    path: "/chat/completions",
    body: chatCompletionsBody(provider, request),
  }),
  decoder: chatCompletionsDecoder,
})
