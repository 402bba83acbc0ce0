import { Schema } from "effect"
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

/** The turn a client posts. Only `user` turns are accepted: the assistant side is the gateway's to write. */
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
  user_message: Message,
  assistant_message: Message,
  coalesce: CoalesceRole,
  metrics: TurnMetrics,
}) {}

export { Usage }
