import { Effect } from "effect"
import { isProviderName } from "../config.ts"
import type { ChatRequest, ThreadTurnRequest } from "../domain/chat.ts"
import { inlineImageBytes, textOf } from "../domain/content.ts"
import { contentOf } from "../domain/content-schema.ts"
import { ImageTooLarge } from "../domain/errors.ts"
import { unsupportedOption } from "../providers/capabilities.ts"
import type { ChatMessage, ProviderOptions } from "../providers/provider.ts"
import { conversationMessage } from "../store/rows.ts"
import { BadRequestError } from "./errors.ts"
import { optionsOf, parseCallId } from "./openai-request.ts"

/** A thread send as the engine takes it: the parameters, the turn's own messages, the tools. */
export interface ThreadTurn {
  readonly body: ChatRequest
  readonly messages: ReadonlyArray<ChatMessage>
  readonly options: ProviderOptions | undefined
}

const invalid = (message: string) =>
  new BadRequestError({ error: { code: "invalid_request", message: `invalid body: ${message}` } })

/**
 * What each role needs, beyond what the schema checked: a user message has `content` and no tool
 * result; a tool send has results (`tool_results`, or one as `tool_call_id` + `content` text) and
 * nothing else. Undefined when nothing is wrong.
 */
const roleProblem = (payload: ThreadTurnRequest): string | undefined => {
  if (payload.role === "user") {
    if (payload.content === undefined) return "content: Missing key"
    if (payload.tool_results !== undefined) return "tool_results: only a tool message carries tool results"
    if (payload.tool_call_id !== undefined) return "tool_call_id: only a tool message answers a tool call"
    return undefined
  }
  if (payload.tool_results !== undefined) {
    if (payload.tool_call_id !== undefined || payload.content !== undefined) {
      return "tool_results: send tool_results, or one result as tool_call_id and content, not both"
    }
    return undefined
  }
  if (payload.tool_call_id === undefined) {
    return "tool_call_id: a tool message must name the call it answers (tool_call_id and content, or tool_results: [{tool_call_id, content}])"
  }
  if (payload.content === undefined) return "content: Missing key (the tool call's result)"
  if (typeof payload.content !== "string") return "content: a tool result is a string"
  return undefined
}

/**
 * A thread send (`POST /api/threads/{id}/messages`) in the engine's terms, or the 400/413 it
 * deserves: every wrong field named. Parts, tools and tool choice are translated by the code the
 * OpenAI-compatible endpoint uses (domain/content-schema.ts, openai-request.ts). Whether tool results
 * answer the thread's last reply is the engine's to check (it holds the conversation).
 */
export const threadTurnOf = (
  payload: ThreadTurnRequest,
  maxImageBytes: number,
): Effect.Effect<ThreadTurn, BadRequestError | ImageTooLarge> =>
  Effect.gen(function* () {
    const problem = roleProblem(payload)
    if (problem !== undefined) return yield* invalid(problem)
    const messages: ReadonlyArray<ChatMessage> =
      payload.role === "user"
        ? [userMessage(payload)]
        : // Without tool_results, roleProblem saw a tool_call_id and a string content.
          (
            payload.tool_results ?? [
              { tool_call_id: payload.tool_call_id!, content: payload.content as string },
            ]
          ).map((result) =>
            conversationMessage(
              "tool",
              result.content,
              undefined,
              undefined,
              parseCallId(result.tool_call_id).id,
            ),
          )
    for (const message of messages) {
      if (typeof message.content === "string") continue
      for (const [at, part] of message.content.entries()) {
        const bytes = part.type === "image_url" ? inlineImageBytes(part.url) : undefined
        if (bytes !== undefined && bytes > maxImageBytes) {
          return yield* new ImageTooLarge({
            message: `content[${at}].image_url is an image of ${bytes} bytes; the limit is ${maxImageBytes} (MAX_IMAGE_BYTES)`,
          })
        }
      }
    }
    const options = optionsOf(payload)
    if (options !== undefined && isProviderName(payload.provider)) {
      const unsupported = unsupportedOption(payload.provider, options)
      if (unsupported !== undefined) {
        return yield* new BadRequestError({ error: { code: "invalid_request", message: unsupported } })
      }
    }
    const body: ChatRequest = {
      role: "user",
      content: messages.map((message) => textOf(message.content)).join("\n"),
      provider: payload.provider,
      model: payload.model,
      ...(payload.temperature === undefined ? {} : { temperature: payload.temperature }),
      ...(payload.max_tokens === undefined ? {} : { max_tokens: payload.max_tokens }),
      ...(payload.top_p === undefined ? {} : { top_p: payload.top_p }),
      ...(payload.stop === undefined ? {} : { stop: payload.stop }),
      ...(payload.parent_message_id === undefined ? {} : { parent_message_id: payload.parent_message_id }),
    }
    return { body, messages, options }
  })

/** A user message: its text, or its parts (text and images) in DAC's vocabulary. */
const userMessage = (payload: ThreadTurnRequest): ChatMessage => {
  const content = contentOf(payload.content)
  return typeof content === "string"
    ? conversationMessage("user", content)
    : conversationMessage("user", textOf(content), content)
}
