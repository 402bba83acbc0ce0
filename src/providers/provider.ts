import { Effect, Queue, Stream } from "effect"
import type { ProviderName } from "../config.ts"
import type {
  Content,
  ResponseFormat,
  ToolCall,
  ToolCallExtra,
  ToolChoice,
  ToolDefinition,
} from "../domain/content.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import type { Usage } from "../domain/thread.ts"

/**
 * One message of the conversation sent upstream. An assistant message may carry the tool calls it
 * made (its content then often ""); a `tool` message is one call's result, naming the call
 * (`toolCallId`) and, where known, the function (`name`: Gemini answers a function by name).
 */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool"
  readonly content: Content
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
  readonly toolCallId?: string | undefined
  readonly name?: string | undefined
}

/** What a request may ask besides sampling: tools, the output format. */
export interface ProviderOptions {
  readonly tools?: ReadonlyArray<ToolDefinition> | undefined
  readonly toolChoice?: ToolChoice | undefined
  /** `false`: at most one call per reply (Anthropic's `disable_parallel_tool_use`). */
  readonly parallelToolCalls?: boolean | undefined
  readonly responseFormat?: ResponseFormat | undefined
}

export interface ProviderRequest extends ProviderOptions {
  readonly provider: ProviderName
  readonly model: string
  readonly messages: ReadonlyArray<ChatMessage>
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  /** Nucleus sampling: only the tokens within this much probability mass. */
  readonly topP?: number | undefined
  /** Sequences at which the reply stops (not included in it). */
  readonly stop?: ReadonlyArray<string> | undefined
  /**
   * `false`: ask for the whole reply in one body instead of a stream (`UPSTREAM_STREAM`, for
   * requests that wait for the whole reply): one read instead of one per token, but the first
   * byte is the whole reply and a cut-off call keeps no partial text.
   */
  readonly stream?: boolean | undefined
}

/**
 * What a provider stream emits, in order: `FirstByte` once (the moment the first byte of the
 * upstream body arrived: TTFT is measured there), any number of `TextDelta`, then exactly one
 * `Finish`. A stream that cannot reach `Finish` fails with a ProviderError instead.
 */
export type ProviderEvent =
  | { readonly _tag: "FirstByte" }
  /** A successful answer said a rate limit is used up: the pacer holds this provider for `pauseMs`. */
  | { readonly _tag: "RateLimitHint"; readonly pauseMs: number }
  | { readonly _tag: "TextDelta"; readonly text: string }
  /**
   * A fragment of tool call `index` (0, 1, … in the reply's order): its first fragment carries `id`
   * and `name`, later ones only more of the arguments' JSON text. A provider that sends whole calls
   * (Gemini) sends each as one delta with its whole arguments.
   */
  | {
      readonly _tag: "ToolCallDelta"
      readonly index: number
      readonly id?: string | undefined
      readonly name?: string | undefined
      readonly argumentsDelta: string
      readonly extra?: ToolCallExtra | undefined
    }
  | { readonly _tag: "Finish"; readonly reason: string; readonly usage: Usage | null }

export const FirstByte: ProviderEvent = { _tag: "FirstByte" }
export const rateLimitHint = (pauseMs: number): ProviderEvent => ({ _tag: "RateLimitHint", pauseMs })
export const textDelta = (text: string): ProviderEvent => ({ _tag: "TextDelta", text })
export const toolCallDelta = (
  index: number,
  argumentsDelta: string,
  start?: { readonly id: string; readonly name: string; readonly extra?: ToolCallExtra | undefined },
): ProviderEvent =>
  start === undefined
    ? { _tag: "ToolCallDelta", index, argumentsDelta }
    : { _tag: "ToolCallDelta", index, argumentsDelta, ...start }
export const finish = (reason: string, usage: Usage | null): ProviderEvent => ({
  _tag: "Finish",
  reason,
  usage,
})

/** Takes a provider's events as they are decoded: synchronously, in order, in the I/O callback. */
export type EventListener = (event: ProviderEvent) => void

/**
 * One wire protocol bound to one provider's settings. `run` is lazy: nothing is sent until it
 * runs; it hands every event to `onEvent` as it is decoded (no queue or fiber hop per token),
 * succeeds once `Finish` was handed over, and interrupting it aborts the upstream request.
 * `stream` is the same call as a Stream, for consumers that want one.
 */
export interface ProviderAdapter {
  readonly name: ProviderName
  /** Models this adapter accepts; `undefined` means any model name is passed through to the provider. */
  readonly models?: ReadonlyArray<string> | undefined
  readonly run: (request: ProviderRequest, onEvent: EventListener) => Effect.Effect<void, ProviderError>
  readonly stream: (request: ProviderRequest) => Stream.Stream<ProviderEvent, ProviderError>
}

/** An adapter from its `run`; its `stream` queues what `run` hands over. */
export const makeAdapter = (
  name: ProviderName,
  run: ProviderAdapter["run"],
  models?: ReadonlyArray<string>,
): ProviderAdapter => ({
  name,
  models,
  run,
  stream: (request) =>
    Stream.callback<ProviderEvent, ProviderError>((queue) =>
      Effect.andThen(
        run(request, (event) => {
          Queue.offerUnsafe(queue, event)
        }),
        Queue.end(queue),
      ),
    ),
})
