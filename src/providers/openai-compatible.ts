import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import { textOf } from "../domain/content.ts"
import { StreamFailed } from "../domain/provider-errors.ts"
import type { Usage } from "../domain/thread.ts"
import { parseJson, sseOrJson, unparseable, usageOf } from "./decode.ts"
import { type MakeDecoder, makeHttpAdapter } from "./http.ts"
import { errorFromStream, truncated } from "./http-errors.ts"
import { type ChatMessage, finish, type ProviderRequest, textDelta, toolCallDelta } from "./provider.ts"

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

/** A message as Chat Completions carries it: DAC's vocabulary is this one, so mostly renaming. */
const wireMessage = (message: ChatMessage) => {
  // Text parts alone go as one string, as DAC always sent them: not every compatible API takes parts.
  const content =
    typeof message.content === "string" || message.content.every((part) => part.type === "text")
      ? textOf(message.content)
      : message.content.map((part) =>
          part.type === "text"
            ? { type: "text", text: part.text }
            : {
                type: "image_url",
                image_url:
                  part.detail === undefined ? { url: part.url } : { url: part.url, detail: part.detail },
              },
        )
  switch (message.role) {
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId, content }
    case "assistant":
      if (message.toolCalls === undefined || message.toolCalls.length === 0)
        return { role: "assistant", content }
      return {
        role: "assistant",
        // OpenAI's own replies say null beside tool calls; an empty string is a text part of nothing.
        content: content === "" ? null : content,
        tool_calls: message.toolCalls.map((call) => ({
          id: call.id,
          type: "function",
          function: { name: call.name, arguments: call.arguments },
        })),
      }
    default:
      return { role: message.role, content }
  }
}

/** Tools, tool choice and output format, as Chat Completions names them. */
const optionFields = (request: ProviderRequest) => {
  const fields: Record<string, unknown> = {}
  if (request.tools !== undefined && request.tools.length > 0) {
    fields.tools = request.tools.map((tool) => ({
      type: "function",
      function: {
        name: tool.name,
        ...(tool.description === undefined ? {} : { description: tool.description }),
        ...(tool.parameters === undefined ? {} : { parameters: tool.parameters }),
        ...(tool.strict === undefined ? {} : { strict: tool.strict }),
      },
    }))
  }
  const choice = request.toolChoice
  if (choice !== undefined) {
    fields.tool_choice =
      typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } }
  }
  if (request.parallelToolCalls !== undefined) fields.parallel_tool_calls = request.parallelToolCalls
  const format = request.responseFormat
  if (format !== undefined) {
    fields.response_format =
      format.type === "json_object"
        ? { type: "json_object" }
        : {
            type: "json_schema",
            json_schema: {
              name: format.name,
              ...(format.schema === undefined ? {} : { schema: format.schema }),
              ...(format.strict === undefined ? {} : { strict: format.strict }),
            },
          }
  }
  return fields
}

export const chatCompletionsBody = (provider: ProviderName, request: ProviderRequest) => {
  const quirks = quirksOf(provider)
  return {
    model: request.model,
    messages: request.messages.map(wireMessage),
    stream: request.stream !== false,
    ...(quirks.askForUsage && request.stream !== false ? { stream_options: { include_usage: true } } : {}),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.maxTokens === undefined ? {} : { [quirks.maxTokensField]: request.maxTokens }),
    ...(request.topP === undefined ? {} : { top_p: request.topP }),
    ...(request.stop === undefined ? {} : { stop: request.stop }),
    ...optionFields(request),
  }
}

/** One entry of `delta.tool_calls` (a fragment) or `message.tool_calls` (a whole call). */
interface WireToolCall {
  readonly index?: unknown
  readonly id?: unknown
  readonly function?: { readonly name?: unknown; readonly arguments?: unknown } | null
}

/** The fields of a chunk (or of a whole non-streamed completion) that DAC reads. */
interface Completion {
  readonly choices?: ReadonlyArray<{
    readonly index?: number
    readonly delta?: { readonly content?: unknown; readonly tool_calls?: unknown } | null
    readonly message?: { readonly content?: unknown; readonly tool_calls?: unknown } | null
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
        const calls = choice[field]?.tool_calls
        if (Array.isArray(calls)) readToolCalls(calls as ReadonlyArray<WireToolCall>)
        if (typeof choice.finish_reason === "string") finishReason = choice.finish_reason
      }
    }
    const emitText = (text: string) => sink.emit(textDelta(text))

    /**
     * A stream's first fragment of a call carries its id and name, later ones only `index` and
     * argument text; a whole completion's calls are each one fragment (numbered by position when
     * the provider gives no index).
     */
    const readToolCalls = (calls: ReadonlyArray<WireToolCall>) => {
      for (const [position, call] of calls.entries()) {
        if (typeof call !== "object" || call === null) continue
        const index = typeof call.index === "number" ? call.index : position
        const name = call.function?.name
        const args = call.function?.arguments
        const argumentsDelta = typeof args === "string" ? args : ""
        sink.emit(
          typeof call.id === "string" && typeof name === "string"
            ? toolCallDelta(index, argumentsDelta, { id: call.id, name })
            : toolCallDelta(index, argumentsDelta),
        )
      }
    }

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
