import { Schema } from "effect"
import { ContentPartSchema, ToolCallOut } from "./content-schema.ts"
import { MessageId, RequestId, ThreadId } from "./ids.ts"

/** `tool`: one tool call's result, answering a call of the assistant reply before it. */
export const Role = Schema.Literals(["user", "assistant", "system", "tool"])
export type Role = typeof Role.Type

/**
 * `pending` before the first upstream byte, `streaming` while text arrives, then one of the final states.
 * `interrupted` is what a crash leaves behind: the start-up sweep moves `pending`/`streaming` rows there.
 */
export const MessageStatus = Schema.Literals([
  "pending",
  "streaming",
  "complete",
  "cancelled",
  "failed",
  "interrupted",
])
export type MessageStatus = typeof MessageStatus.Type

export const Usage = Schema.Struct({
  input_tokens: Schema.Int,
  output_tokens: Schema.Int,
})
export type Usage = typeof Usage.Type

export class Thread extends Schema.Class<Thread>("Thread")({
  thread_id: ThreadId,
  title: Schema.NullOr(Schema.String),
  created_at: Schema.String,
}) {}

export class Message extends Schema.Class<Message>("Message")({
  message_id: MessageId,
  thread_id: ThreadId,
  role: Role,
  content: Schema.String,
  status: MessageStatus,
  provider: Schema.NullOr(Schema.String),
  model: Schema.NullOr(Schema.String),
  usage: Schema.NullOr(Usage),
  finish_reason: Schema.NullOr(Schema.String),
  error_code: Schema.NullOr(Schema.String),
  request_id: Schema.NullOr(RequestId),
  created_at: Schema.String,
  updated_at: Schema.String,
  /** An assistant reply's tool calls, in order; absent when it made none. */
  tool_calls: Schema.optional(Schema.Array(ToolCallOut)),
  /** A `tool` message: the call it answers. */
  tool_call_id: Schema.optional(Schema.String),
  /**
   * A user message sent as content parts (text and images, in order), as sent; absent for a plain
   * text. `content` is then its text parts joined.
   */
  parts: Schema.optional(Schema.Array(ContentPartSchema)),
}) {}

export class ThreadWithMessages extends Schema.Class<ThreadWithMessages>("ThreadWithMessages")({
  thread_id: ThreadId,
  title: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  messages: Schema.Array(Message),
}) {}
