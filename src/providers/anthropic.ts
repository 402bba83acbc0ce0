import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import { parseJson, sseOrJson, unparseable, usageOf } from "./decode.ts"
import { type MakeDecoder, makeHttpAdapter } from "./http.ts"
import { errorFromStream, truncated } from "./http-errors.ts"
import { finish, type ProviderRequest, textDelta } from "./provider.ts"

/**
 * Anthropic Messages (`POST {base}/messages`, `stream: true`). The stream is a sequence of typed
 * events: `message_start` (input tokens), `content_block_delta` (text), `message_delta` (stop
 * reason, cumulative output tokens), `message_stop`; `ping` keepalives; `error` for failures
 * after the 200. No `[DONE]`: `message_stop` is the end.
 */

export const anthropicVersion = "2023-06-01"

/** Anthropic requires `max_tokens`; this is what DAC asks for when the caller set none. */
export const defaultMaxTokens = 4096

export const messagesBody = (request: ProviderRequest) => {
  const system = request.messages.filter((m) => m.role === "system").map((m) => m.content)
  return {
    model: request.model,
    max_tokens: request.maxTokens ?? defaultMaxTokens,
    messages: request.messages
      .filter((m) => m.role !== "system")
      .map(({ role, content }) => ({ role, content })),
    ...(system.length === 0 ? {} : { system: system.join("\n\n") }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.topP === undefined ? {} : { top_p: request.topP }),
    ...(request.stop === undefined ? {} : { stop_sequences: request.stop }),
    stream: request.stream !== false,
  }
}

/** Anthropic's stop reasons in the OpenAI vocabulary the rest of DAC (and its OpenAI-compatible API) speaks. */
export const finishReasonOf = (stopReason: string): string => {
  switch (stopReason) {
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "max_tokens":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return stopReason
  }
}

type Counts = { readonly input_tokens?: unknown; readonly output_tokens?: unknown }

/** The fields of the stream's events (and of a non-streamed message) that DAC reads. */
interface MessageEvent {
  readonly type?: unknown
  readonly message?: { readonly usage?: Counts }
  readonly delta?: { readonly type?: unknown; readonly text?: unknown; readonly stop_reason?: unknown }
  readonly usage?: Counts
  readonly error?: unknown
  readonly content?: ReadonlyArray<{ readonly type?: unknown; readonly text?: unknown }>
  readonly stop_reason?: unknown
}

export const messagesDecoder = (provider: ProviderName, secret: string): MakeDecoder =>
  sseOrJson(provider, (sink) => {
    let input: unknown
    let output: unknown
    let stopReason: string | undefined
    let done = false

    const count = (usage: Counts | undefined) => {
      if (!usage) return
      // Both counts are cumulative: message_delta repeats (and may correct) what message_start said.
      if (usage.input_tokens !== undefined) input = usage.input_tokens
      if (usage.output_tokens !== undefined) output = usage.output_tokens
    }

    return {
      event: (_event, data) => {
        if (done) return
        const parsed = parseJson(data)
        if (!Predicate.isObject(parsed)) return sink.fail(unparseable(provider, data))
        const event = parsed as MessageEvent
        switch (event.type) {
          case "content_block_delta":
            if (
              event.delta?.type === "text_delta" &&
              typeof event.delta.text === "string" &&
              event.delta.text !== ""
            ) {
              sink.emit(textDelta(event.delta.text))
            }
            return
          case "message_start":
            return count(event.message?.usage)
          case "message_delta":
            if (typeof event.delta?.stop_reason === "string") stopReason = event.delta.stop_reason
            return count(event.usage)
          case "message_stop":
            done = true
            return sink.emit(finish(finishReasonOf(stopReason ?? "end_turn"), usageOf(input, output)))
          case "error":
            return sink.fail(errorFromStream(provider, event.error, secret))
        }
      },
      end: () => {
        if (!done) sink.fail(truncated(provider, "message_stop"))
      },
      json: (value) => {
        if (!Predicate.isObject(value)) return sink.fail(unparseable(provider, value))
        const message = value as MessageEvent
        if (message.type === "error") return sink.fail(errorFromStream(provider, message.error, secret))
        const text = (message.content ?? [])
          .filter((block) => block.type === "text" && typeof block.text === "string")
          .map((block) => block.text as string)
          .join("")
        if (text.length > 0) sink.emit(textDelta(text))
        count(message.usage)
        if (typeof message.stop_reason !== "string") return sink.fail(truncated(provider, "its stop_reason"))
        sink.emit(finish(finishReasonOf(message.stop_reason), usageOf(input, output)))
      },
    }
  })

export const makeAnthropicAdapter = makeHttpAdapter({
  span: "Anthropic",
  headers: (key) => ({ "x-api-key": key, "anthropic-version": anthropicVersion }),
  request: (request) => ({ path: "/messages", body: messagesBody(request) }),
  decoder: messagesDecoder,
})
