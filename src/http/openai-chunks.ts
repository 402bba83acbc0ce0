import type { ToolCall } from "../domain/content.ts"
import type { Usage } from "../domain/thread.ts"
import type { GenerationOutcome } from "../engine/generations.ts"
import type { ListenerFormat } from "./listener-body.ts"
import { openAiErrorBody as errorBody } from "./openai-errors.ts"
import { wireCallId } from "./openai-request.ts"

/**
 * A completion's answer in OpenAI's shapes: the chunks of a stream (one choice's frames at a time,
 * each chunk naming its choice's `index`) and the choices of a whole reply.
 */

/** What every chunk of one completion repeats: its id, creation time and model (as the client named it). */
export interface CompletionHead {
  readonly id: string
  readonly created: number
  readonly model: string
}

const encoder = new TextEncoder()
export const sse = (value: unknown) => encoder.encode(`data: ${JSON.stringify(value)}\n\n`)
export const doneBytes = encoder.encode("data: [DONE]\n\n")

/** DAC's usage in OpenAI's words. */
export const usageOf = (usage: Usage | null | undefined) =>
  usage == null
    ? null
    : {
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: usage.input_tokens + usage.output_tokens,
      }

/** A reply's tool calls in OpenAI's words. */
const toolCallsOf = (calls: ReadonlyArray<ToolCall>) =>
  calls.map((call) => ({
    id: wireCallId(call.id, call.extra?.thoughtSignature),
    type: "function",
    function: { name: call.name, arguments: call.arguments },
  }))

/** The `delta` of one tool-call fragment: its first carries id, type and name, the rest only arguments. */
const toolCallDeltaOf = (data: Readonly<Record<string, unknown>>) => {
  const args = data.arguments_delta
  if (typeof data.id !== "string")
    return { tool_calls: [{ index: data.index, function: { arguments: args } }] }
  const signature = typeof data.thought_signature === "string" ? data.thought_signature : undefined
  return {
    tool_calls: [
      {
        index: data.index,
        id: wireCallId(data.id, signature),
        type: "function",
        function: { name: data.name, arguments: args },
      },
    ],
  }
}

const chunkOf = (
  head: CompletionHead,
  index: number,
  delta: Record<string, unknown>,
  finishReason: string | null,
) => ({
  id: head.id,
  object: "chat.completion.chunk",
  created: head.created,
  model: head.model,
  choices: [{ index, delta, finish_reason: finishReason, logprobs: null }],
})

/** A choice's first chunk: its role, at once. */
export const roleChunk = (head: CompletionHead, index: number) =>
  sse(chunkOf(head, index, { role: "assistant", content: "" }, null))

/** The last chunk before `[DONE]` when the client asked for usage: no choices, the whole usage. */
export const usageChunk = (head: CompletionHead, usage: Usage | null) =>
  sse({ ...chunkOf(head, 0, {}, null), choices: [], usage: usageOf(usage) })

const slowConsumer = sse(errorBody("api_error", "slow_consumer", "the client fell too far behind"))

/**
 * How choice `index` writes its generation's frames as chunks. After its finish chunk come
 * `afterFinish(usage)`'s bytes (a one-choice stream: the usage chunk and `[DONE]`); `failed` hears
 * of its error, or (`slow`) of its client falling behind: a stream of several choices ends then.
 */
export const chunkFormat = (
  head: CompletionHead,
  index: number,
  afterFinish: (usage: Usage | null) => Uint8Array,
  failed: (slow: boolean) => void = () => {},
): ListenerFormat => {
  // A content chunk is the same bytes around its text: only the text is encoded per token.
  const [deltaHead, deltaTail] = JSON.stringify(chunkOf(head, index, { content: "" }, null)).split(
    '"content":""',
  )
  const deltaBefore = `data: ${deltaHead}"content":`
  const deltaAfter = `${deltaTail}\n\n`
  return {
    encode: (f) => {
      switch (f.type) {
        case "delta":
          return Buffer.from(deltaBefore + JSON.stringify(f.data.text) + deltaAfter)
        case "tool_call":
          return sse(chunkOf(head, index, toolCallDeltaOf(f.data), null))
        case "done": {
          // The done frame carries the usage and finish reason: no need to wait for the outcome.
          const finish = sse(chunkOf(head, index, {}, String(f.data.finish_reason ?? "stop")))
          return Buffer.concat([finish, afterFinish(f.data.usage as Usage | null)])
        }
        case "error":
          failed(false)
          return sse(errorBody("api_error", f.data.code, f.data.message))
        case "keepalive":
          // An SSE comment: clients (the SDKs included) skip it; proxies see the stream is alive.
          return f.bytes
        default:
          return undefined
      }
    },
    fellBehind: () => {
      failed(true)
      return slowConsumer
    },
  }
}

/** One choice of a whole reply, from its completed generation. */
export const choiceOf = (index: number, outcome: Extract<GenerationOutcome, { _tag: "Completed" }>) => {
  const calls = outcome.toolCalls
  const text = outcome.message.content
  return {
    index,
    message:
      calls === undefined
        ? { role: "assistant", content: text, refusal: null }
        : {
            role: "assistant",
            // OpenAI's own shape: null content beside tool calls when the reply has no text.
            content: text === "" ? null : text,
            refusal: null,
            tool_calls: toolCallsOf(calls),
          },
    finish_reason: outcome.message.finish_reason ?? "stop",
    logprobs: null,
  }
}

/** The usage of several calls: their sums (null when none reported any). */
export const sumUsage = (usages: ReadonlyArray<Usage | null>): Usage | null => {
  const reported = usages.filter((usage): usage is Usage => usage !== null)
  if (reported.length === 0) return null
  return {
    input_tokens: reported.reduce((sum, usage) => sum + usage.input_tokens, 0),
    output_tokens: reported.reduce((sum, usage) => sum + usage.output_tokens, 0),
  }
}
