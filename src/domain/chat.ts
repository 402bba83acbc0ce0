import { Schema } from "effect"
import { ContentPartSchema, Text, ToolChoiceSchema, ToolSchema } from "./content-schema.ts"
import { MessageId, RequestId } from "./ids.ts"
import { modelNameChecks, providerNameChecks, storableText } from "./text.ts"
import { Message, Usage } from "./thread.ts"

/** A sequence at which a reply stops. */
export const StopSequence = Schema.String.check(
  Schema.isNonEmpty({ message: "a stop sequence must not be empty" }),
  storableText,
)

/** Up to 4 of them: OpenAI's limit, the smallest of the providers'. */
export const StopSequences = Schema.Array(StopSequence).check(
  Schema.isMaxLength(4, { message: "at most 4 stop sequences" }),
)

/**
 * A turn's parameters as the engine reads them: the model, the sampling, and `content`, the text of
 * its message (what the bounds and the log read; a thread turn's messages themselves come beside it,
 * see `TurnInput.messages`).
 */
export const ChatRequest = Schema.Struct({
  role: Schema.Literal("user"),
  content: Schema.String.check(Schema.isNonEmpty({ message: "content must not be empty" }), storableText),
  provider: Schema.String.check(
    Schema.isNonEmpty({ message: "provider must not be empty" }),
    ...providerNameChecks,
  ),
  model: Schema.String.check(Schema.isNonEmpty({ message: "model must not be empty" }), ...modelNameChecks),
  temperature: Schema.optional(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 2 }))),
  max_tokens: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 }))),
  top_p: Schema.optional(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 }))),
  stop: Schema.optional(StopSequences),
  /**
   * The message this turn answers (the thread's last reply as the client saw it): a turn sent after
   * the thread moved past it is refused (409 thread_moved), unless it repeats the turn that moved
   * it (then it is that turn, a duplicate).
   */
  parent_message_id: Schema.optional(MessageId),
}).annotate({ identifier: "ChatRequest" })
export type ChatRequest = typeof ChatRequest.Type

/** One tool call's result: the call it answers (an id the thread's last reply made) and what it returned. */
export const ToolResult = Schema.Struct({
  tool_call_id: Schema.String.check(Schema.isNonEmpty({ message: "tool_call_id must not be empty" })),
  content: Text,
})
export type ToolResult = typeof ToolResult.Type

/**
 * What a client posts to a thread: a user message (`content` a string, or parts: text and images),
 * or the results of the tool calls the thread's last reply made (`role: "tool"` with `tool_results`,
 * or one result as `tool_call_id` + `content`), with the model to answer and, optionally, the tools
 * it may call. Which fields each role needs is checked after decoding (http/thread-turn.ts), so each
 * wrong field is named on its own. The assistant side is the gateway's to write.
 */
export const ThreadTurnRequest = Schema.Struct({
  role: Schema.Literals(["user", "tool"]),
  content: Schema.optional(
    Schema.Union([
      Schema.String.check(Schema.isNonEmpty({ message: "content must not be empty" }), storableText),
      Schema.Array(ContentPartSchema).check(Schema.isMinLength(1, { message: "content must not be empty" })),
    ]),
  ),
  tool_call_id: Schema.optional(
    Schema.String.check(Schema.isNonEmpty({ message: "tool_call_id must not be empty" })),
  ),
  tool_results: Schema.optional(
    Schema.Array(ToolResult).check(Schema.isMinLength(1, { message: "tool_results must not be empty" })),
  ),
  provider: ChatRequest.fields.provider,
  model: ChatRequest.fields.model,
  temperature: ChatRequest.fields.temperature,
  max_tokens: ChatRequest.fields.max_tokens,
  top_p: ChatRequest.fields.top_p,
  stop: ChatRequest.fields.stop,
  parent_message_id: ChatRequest.fields.parent_message_id,
  /** Functions the model may call, as on `/v1/chat/completions`. */
  tools: Schema.optional(Schema.NullOr(Schema.Array(ToolSchema))),
  tool_choice: Schema.optional(Schema.NullOr(ToolChoiceSchema)),
  parallel_tool_calls: Schema.optional(Schema.NullOr(Schema.Boolean)),
}).annotate({ identifier: "ThreadTurnRequest" })
export type ThreadTurnRequest = typeof ThreadTurnRequest.Type

/** How a request took part in coalescing (the coalescer decides; without it every request leads). */
export const CoalesceRole = Schema.Literals(["leader", "follower", "cache_hit", "bypass"])
export type CoalesceRole = typeof CoalesceRole.Type

export const TurnMetrics = Schema.Struct({
  queue_wait_ms: Schema.Number,
  ttft_ms: Schema.NullOr(Schema.Number),
  latency_ms: Schema.Number,
})
export type TurnMetrics = typeof TurnMetrics.Type

export class TurnResult extends Schema.Class<TurnResult>("TurnResult")({
  request_id: RequestId,
  /** The message sent: the user's, or (a tool send) the first tool result. */
  user_message: Message,
  /** A tool send: every result stored, in order. */
  tool_messages: Schema.optional(Schema.Array(Message)),
  assistant_message: Message,
  coalesce: CoalesceRole,
  metrics: TurnMetrics,
}) {}

export { Usage }
