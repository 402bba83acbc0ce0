import { Schema } from "effect"
import { StopSequence, StopSequences } from "../domain/chat.ts"
import type { ResponseFormat, ToolChoice, ToolDefinition } from "../domain/content.ts"
import {
  ContentPartSchema,
  contentOf,
  JsonObject,
  Text,
  ToolChoiceSchema,
  ToolSchema,
} from "../domain/content-schema.ts"
import { modelNameChecks } from "../domain/text.ts"
import type { ChatMessage, ProviderOptions } from "../providers/provider.ts"

/**
 * The part of OpenAI's Chat Completions request DAC passes on, as a Schema, and its translation into
 * DAC's provider vocabulary (domain/content.ts). Fields that would change the answer and are not
 * here are refused by `unsupportedParameter` (openai-parameters.ts) unless they hold their default.
 */

const ToolCallSchema = Schema.Struct({
  id: Schema.String.check(Schema.isNonEmpty({ message: "a tool call id must not be empty" })),
  type: Schema.optional(Schema.Literal("function")),
  function: Schema.Struct({ name: Schema.String, arguments: Text }),
  /** DAC's own extra, sent back as it answered it: Gemini's signature of the call. */
  thought_signature: Schema.optional(Schema.String),
})

/**
 * One message; which fields each role needs is checked after decoding (`messageProblem`), so a wrong
 * field is named on its own rather than as "no member of a union matched".
 */
const OpenAiMessage = Schema.Struct({
  role: Schema.Literals(["system", "developer", "user", "assistant", "tool"]),
  content: Schema.optional(Schema.NullOr(Schema.Union([Text, Schema.Array(ContentPartSchema)]))),
  name: Schema.optional(Schema.String),
  tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCallSchema))),
  tool_call_id: Schema.optional(Schema.String),
})
type OpenAiMessage = typeof OpenAiMessage.Type

/**
 * The largest `n`: each choice is an upstream call of its own, with its own pacer slot
 * (openai-choices.ts), so a request asks for at most this many.
 */
export const maxChoices = 8

const ResponseFormatSchema = Schema.Union([
  Schema.Struct({ type: Schema.Literal("text") }),
  Schema.Struct({ type: Schema.Literal("json_object") }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    json_schema: Schema.Struct({
      name: Schema.String,
      description: Schema.optional(Schema.String),
      schema: Schema.optional(JsonObject),
      strict: Schema.optional(Schema.NullOr(Schema.Boolean)),
    }),
  }),
])

export const CompletionRequest = Schema.Struct({
  model: Schema.String.check(Schema.isNonEmpty({ message: "model must not be empty" }), ...modelNameChecks),
  messages: Schema.Array(OpenAiMessage).check(
    Schema.isMinLength(1, { message: "messages must not be empty" }),
  ),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(
    Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.Boolean) })),
  ),
  max_tokens: Schema.optional(Schema.NullOr(Schema.Int.check(Schema.isGreaterThan(0)))),
  max_completion_tokens: Schema.optional(Schema.NullOr(Schema.Int.check(Schema.isGreaterThan(0)))),
  temperature: Schema.optional(
    Schema.NullOr(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 2 }))),
  ),
  top_p: Schema.optional(Schema.NullOr(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })))),
  stop: Schema.optional(Schema.NullOr(Schema.Union([StopSequence, StopSequences]))),
  n: Schema.optional(
    Schema.NullOr(
      Schema.Number.check(
        Schema.makeFilter((n) =>
          Number.isInteger(n) && n >= 1 && n <= maxChoices
            ? undefined
            : `n must be an integer from 1 to ${maxChoices}`,
        ),
      ),
    ),
  ),
  tools: Schema.optional(Schema.NullOr(Schema.Array(ToolSchema))),
  tool_choice: Schema.optional(Schema.NullOr(ToolChoiceSchema)),
  parallel_tool_calls: Schema.optional(Schema.NullOr(Schema.Boolean)),
  response_format: Schema.optional(Schema.NullOr(ResponseFormatSchema)),
})
export type CompletionRequest = typeof CompletionRequest.Type

/** What is wrong with one message for its role, and the field; undefined when nothing is. */
export const messageProblem = (
  message: OpenAiMessage,
  index: number,
): { readonly message: string; readonly param: string } | undefined => {
  const at = `messages[${index}]`
  const hasCalls = message.tool_calls != null && message.tool_calls.length > 0
  if (message.content == null && !(message.role === "assistant" && hasCalls)) {
    return { message: `${at}.content: is missing`, param: `${at}.content` }
  }
  if (message.role === "tool" && (message.tool_call_id === undefined || message.tool_call_id === "")) {
    return {
      message: `${at}.tool_call_id: a tool message must name the call it answers`,
      param: `${at}.tool_call_id`,
    }
  }
  if (hasCalls && message.role !== "assistant") {
    return {
      message: `${at}.tool_calls: only assistant messages carry tool calls`,
      param: `${at}.tool_calls`,
    }
  }
  if (
    message.role !== "user" &&
    Array.isArray(message.content) &&
    message.content.some((part) => part.type === "image_url")
  ) {
    return { message: `${at}.content: images go in user messages only`, param: `${at}.content` }
  }
  return undefined
}

/**
 * Gemini signs its function calls (`thoughtSignature`) and wants each signature back with the call
 * on the next turn. OpenAI's clients keep a call's id and nothing else (the SDKs' stream assemblers
 * drop unknown fields), so the signature rides in the id DAC answers: `{id}~ts~{signature}` (`~`
 * is in no base64 alphabet), and comes back apart here.
 */
const signatureMark = "~ts~"

export const wireCallId = (id: string, signature: string | undefined) =>
  signature === undefined ? id : `${id}${signatureMark}${signature}`

export const parseCallId = (wire: string): { readonly id: string; readonly signature?: string } => {
  const at = wire.indexOf(signatureMark)
  return at < 0 ? { id: wire } : { id: wire.slice(0, at), signature: wire.slice(at + signatureMark.length) }
}

/** One message in DAC's vocabulary (`developer` is OpenAI's newer name for `system`). */
export const chatMessageOf = (message: OpenAiMessage): ChatMessage => {
  const content = contentOf(message.content)
  switch (message.role) {
    case "developer":
      return { role: "system", content }
    case "tool":
      return {
        role: "tool",
        content,
        toolCallId: message.tool_call_id === undefined ? undefined : parseCallId(message.tool_call_id).id,
        name: message.name,
      }
    case "assistant":
      return message.tool_calls == null || message.tool_calls.length === 0
        ? { role: "assistant", content }
        : {
            role: "assistant",
            content,
            toolCalls: message.tool_calls.map((call) => {
              const { id, signature } = parseCallId(call.id)
              const thoughtSignature = call.thought_signature ?? signature
              return {
                id,
                name: call.function.name,
                arguments: call.function.arguments,
                ...(thoughtSignature === undefined ? {} : { extra: { thoughtSignature } }),
              }
            }),
          }
    default:
      return { role: message.role, content }
  }
}

/** The fields `optionsOf` reads: a completion's, or a thread turn's (which has no format). */
export interface OptionFields {
  readonly tools?: CompletionRequest["tools"]
  readonly tool_choice?: CompletionRequest["tool_choice"]
  readonly parallel_tool_calls?: CompletionRequest["parallel_tool_calls"]
  readonly response_format?: CompletionRequest["response_format"]
}

/** Tools, tool choice and output format; undefined when the request asks none of them (`n` is served by openai-choices.ts). */
export const optionsOf = (body: OptionFields): ProviderOptions | undefined => {
  const tools: ReadonlyArray<ToolDefinition> | undefined = body.tools?.map(({ function: f }) => ({
    name: f.name,
    ...(f.description === undefined ? {} : { description: f.description }),
    ...(f.parameters === undefined ? {} : { parameters: f.parameters }),
    ...(f.strict == null ? {} : { strict: f.strict }),
  }))
  const choice = body.tool_choice
  const toolChoice: ToolChoice | undefined =
    choice == null ? undefined : typeof choice === "string" ? choice : { name: choice.function.name }
  const format = body.response_format
  const responseFormat: ResponseFormat | undefined =
    format == null || format.type === "text"
      ? undefined
      : format.type === "json_object"
        ? { type: "json_object" }
        : {
            type: "json_schema",
            name: format.json_schema.name,
            ...(format.json_schema.schema === undefined ? {} : { schema: format.json_schema.schema }),
            ...(format.json_schema.strict == null ? {} : { strict: format.json_schema.strict }),
          }
  const options: ProviderOptions = {
    ...(tools === undefined || tools.length === 0 ? {} : { tools }),
    // Without tools a choice means nothing (OpenAI refuses one); `none` is then the same as absent.
    ...(toolChoice === undefined || tools === undefined || tools.length === 0 ? {} : { toolChoice }),
    ...(body.parallel_tool_calls == null || tools === undefined || tools.length === 0
      ? {}
      : { parallelToolCalls: body.parallel_tool_calls }),
    ...(responseFormat === undefined ? {} : { responseFormat }),
  }
  return Object.keys(options).length === 0 ? undefined : options
}
