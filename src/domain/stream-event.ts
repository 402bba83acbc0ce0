import { Schema } from "effect"
import { CoalesceRole } from "./chat.ts"
import { GenerationId, MessageId, RequestId } from "./ids.ts"
import { Usage } from "./thread.ts"

/** The events of a reply stream, as sent in each SSE `data:` line (the SSE `event:` is the `type`). */
export const PingEvent = Schema.Struct({ type: Schema.Literal("ping") })

export const MetaEvent = Schema.Struct({
  type: Schema.Literal("meta"),
  request_id: Schema.optional(RequestId),
  generation_id: Schema.optional(GenerationId),
  provider: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  coalesce: Schema.optional(CoalesceRole),
  queue_position: Schema.optional(Schema.Number),
  ttft_ms: Schema.optional(Schema.Number),
})

export const DeltaEvent = Schema.Struct({
  type: Schema.Literal("delta"),
  text: Schema.String,
  /** A stored reply's whole text, to replace what the client has (see the README's reply streams). */
  replace: Schema.optional(Schema.Boolean),
})

/** A fragment of a tool call: the first of each call carries its id and name. */
export const ToolCallEvent = Schema.Struct({
  type: Schema.Literal("tool_call"),
  index: Schema.Number,
  id: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  arguments_delta: Schema.String,
  thought_signature: Schema.optional(Schema.String),
})

export const DoneEvent = Schema.Struct({
  type: Schema.Literal("done"),
  message_id: MessageId,
  finish_reason: Schema.String,
  usage: Schema.NullOr(Usage),
  latency_ms: Schema.Number,
  queue_wait_ms: Schema.optional(Schema.Number),
})

export const ErrorEvent = Schema.Struct({
  type: Schema.Literal("error"),
  code: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
})

export const CancelledEvent = Schema.Struct({ type: Schema.Literal("cancelled") })

export const StreamEvent = Schema.Union([
  PingEvent,
  MetaEvent,
  DeltaEvent,
  ToolCallEvent,
  DoneEvent,
  ErrorEvent,
  CancelledEvent,
])
export type StreamEvent = typeof StreamEvent.Type

/** The events a generation emits (the same for every listener, in DAC's and OpenAI's formats). */
export type GenerationEventType = "meta" | "delta" | "tool_call" | "done" | "error" | "cancelled"

/** An event's fields besides its `type` (a frame's `data`). */
export type EventData<T extends StreamEvent["type"]> = Omit<
  Extract<StreamEvent, { readonly type: T }>,
  "type"
>
