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
  ttft_ms: Schema.optional(Schema.Number),
})

export const DeltaEvent = Schema.Struct({ type: Schema.Literal("delta"), text: Schema.String })

export const DoneEvent = Schema.Struct({
  type: Schema.Literal("done"),
  message_id: MessageId,
  finish_reason: Schema.String,
  usage: Schema.NullOr(Usage),
  latency_ms: Schema.Number,
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
  DoneEvent,
  ErrorEvent,
  CancelledEvent,
])
export type StreamEvent = typeof StreamEvent.Type
