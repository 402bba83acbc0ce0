import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import { type ContentPart, dataUrlOf, textOf } from "../domain/content.ts"
import { outputConfigOf } from "./anthropic-schema.ts"
import { parseJson, sseOrJson, unparseable, usageOf } from "./decode.ts"
import { type MakeDecoder, makeHttpAdapter } from "./http.ts"
import { errorFromStream, truncated } from "./http-errors.ts"
import { type ChatMessage, finish, type ProviderRequest, textDelta, toolCallDelta } from "./provider.ts"

/**
 * Anthropic Messages (`POST {base}/messages`, `stream: true`). The stream is a sequence of typed
 * events: `message_start` (input tokens), `content_block_delta` (text), `message_delta` (stop
 * reason, cumulative output tokens), `message_stop`; `ping` keepalives; `error` for failures
 * after the 200. No `[DONE]`: `message_stop` is the end.
 */

export const anthropicVersion = "2023-06-01"

/** Anthropic requires `max_tokens`; this is what DAC asks for when the caller set none. */
export const defaultMaxTokens = 4096

/** A content part as an Anthropic block: an image by its bytes (a data: URL) or by its URL. */
const block = (part: ContentPart) => {
  if (part.type === "text") return { type: "text", text: part.text }
  const inline = dataUrlOf(part.url)
  return {
    type: "image",
    source:
      inline === undefined
        ? { type: "url", url: part.url }
        : { type: "base64", media_type: inline.mediaType, data: inline.data },
  }
}

/** Arguments as the object `tool_use.input` must be; text that is not a JSON object becomes `{}`. */
const inputOf = (args: string): unknown => {
  try {
    const value: unknown = JSON.parse(args === "" ? "{}" : args)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : {}
  } catch {
    return {}
  }
}

/**
 * The conversation as Anthropic's turns: tool calls become `tool_use` blocks of the assistant turn,
 * and the results of consecutive `tool` messages one user turn of `tool_result` blocks (Anthropic
 * wants every result of a turn's calls in the next user turn).
 */
const turnsOf = (messages: ReadonlyArray<ChatMessage>) => {
  const turns: Array<{ role: "user" | "assistant"; content: string | Array<unknown> }> = []
  for (const message of messages) {
    switch (message.role) {
      case "system":
        break
      case "tool": {
        const result = {
          type: "tool_result",
          tool_use_id: message.toolCallId,
          content: textOf(message.content),
        }
        const last = turns.at(-1)
        if (last?.role === "user" && Array.isArray(last.content) && isToolResult(last.content[0])) {
          last.content.push(result)
        } else turns.push({ role: "user", content: [result] })
        break
      }
      case "assistant": {
        if (message.toolCalls === undefined || message.toolCalls.length === 0) {
          turns.push({
            role: "assistant",
            content: typeof message.content === "string" ? message.content : message.content.map(block),
          })
          break
        }
        const text = textOf(message.content)
        turns.push({
          role: "assistant",
          content: [
            ...(text === "" ? [] : [{ type: "text", text }]),
            ...message.toolCalls.map((call) => ({
              type: "tool_use",
              id: call.id,
              name: call.name,
              input: inputOf(call.arguments),
            })),
          ],
        })
        break
      }
      default:
        turns.push({
          role: "user",
          content: typeof message.content === "string" ? message.content : message.content.map(block),
        })
    }
  }
  return turns
}

const isToolResult = (value: unknown) => (value as { type?: unknown } | undefined)?.type === "tool_result"

/** `tools`, and `tool_choice` with `disable_parallel_tool_use`. */
const toolFields = (request: ProviderRequest) => {
  const fields: Record<string, unknown> = {}
  if (request.tools !== undefined && request.tools.length > 0) {
    fields.tools = request.tools.map((tool) => ({
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      input_schema: tool.parameters ?? { type: "object", properties: {} },
    }))
  }
  const choice = request.toolChoice
  const type =
    choice === undefined
      ? undefined
      : typeof choice === "string"
        ? { auto: "auto", none: "none", required: "any" }[choice]
        : "tool"
  const single = request.parallelToolCalls === false && type !== "none"
  if (type !== undefined || single) {
    fields.tool_choice = {
      type: type ?? "auto",
      ...(typeof choice === "object" ? { name: choice.name } : {}),
      ...(single ? { disable_parallel_tool_use: true } : {}),
    }
  }
  return fields
}

export const messagesBody = (request: ProviderRequest) => {
  const system = request.messages.filter((m) => m.role === "system").map((m) => textOf(m.content))
  return {
    model: request.model,
    max_tokens: request.maxTokens ?? defaultMaxTokens,
    messages: turnsOf(request.messages),
    ...(system.length === 0 ? {} : { system: system.join("\n\n") }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.topP === undefined ? {} : { top_p: request.topP }),
    ...(request.stop === undefined ? {} : { stop_sequences: request.stop }),
    ...toolFields(request),
    ...outputConfigOf(request.responseFormat),
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
  readonly index?: unknown
  readonly message?: { readonly usage?: Counts }
  readonly delta?: {
    readonly type?: unknown
    readonly text?: unknown
    readonly partial_json?: unknown
    readonly stop_reason?: unknown
  }
  readonly content_block?: ContentBlock
  readonly usage?: Counts
  readonly error?: unknown
  readonly content?: ReadonlyArray<ContentBlock>
  readonly stop_reason?: unknown
}

interface ContentBlock {
  readonly type?: unknown
  readonly text?: unknown
  readonly id?: unknown
  readonly name?: unknown
  readonly input?: unknown
}

export const messagesDecoder = (provider: ProviderName, secret: string): MakeDecoder =>
  sseOrJson(provider, (sink) => {
    let input: unknown
    let output: unknown
    let stopReason: string | undefined
    let done = false
    // Tool calls are numbered 0, 1, … in the reply; Anthropic numbers every block (text ones too).
    let calls = 0
    /** Block index → its call's index and whether any argument text came (none means `{}`). */
    const openCalls = new Map<unknown, { index: number; args: boolean }>()

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
            } else if (
              event.delta?.type === "input_json_delta" &&
              typeof event.delta.partial_json === "string"
            ) {
              const call = openCalls.get(event.index)
              if (call !== undefined && event.delta.partial_json !== "") {
                call.args = true
                sink.emit(toolCallDelta(call.index, event.delta.partial_json))
              }
            }
            return
          case "content_block_start": {
            const started = event.content_block
            if (
              started?.type === "tool_use" &&
              typeof started.id === "string" &&
              typeof started.name === "string"
            ) {
              const index = calls++
              openCalls.set(event.index, { index, args: false })
              sink.emit(toolCallDelta(index, "", { id: started.id, name: started.name }))
            }
            return
          }
          case "content_block_stop": {
            const call = openCalls.get(event.index)
            // A call without parameters streams only "": its arguments are the empty object.
            if (call !== undefined && !call.args) sink.emit(toolCallDelta(call.index, "{}"))
            openCalls.delete(event.index)
            return
          }
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
        const blocks = Array.isArray(message.content) ? message.content : []
        const text = blocks
          .filter((block) => block.type === "text" && typeof block.text === "string")
          .map((block) => block.text as string)
          .join("")
        if (text.length > 0) sink.emit(textDelta(text))
        for (const block of blocks) {
          if (block.type === "tool_use" && typeof block.id === "string" && typeof block.name === "string") {
            sink.emit(
              toolCallDelta(calls++, JSON.stringify(block.input ?? {}), { id: block.id, name: block.name }),
            )
          }
        }
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
