import { Schema } from "effect"
import type { Content, ContentPart, ToolCall } from "./content.ts"
import { storableText } from "./text.ts"

/**
 * The wire shapes of content parts, tools and tool calls (OpenAI's Chat Completions words), as
 * Schemas, and their translation to and from DAC's vocabulary (content.ts). Both the OpenAI-compatible
 * endpoint (http/openai-request.ts) and the thread API (domain/chat.ts, domain/thread.ts) use these:
 * one definition of what a part or a tool is.
 */

export const Text = Schema.String.check(storableText)

export const TextPartSchema = Schema.Struct({ type: Schema.Literal("text"), text: Text })

export const ImagePartSchema = Schema.Struct({
  type: Schema.Literal("image_url"),
  image_url: Schema.Struct({
    url: Schema.String.check(
      Schema.makeFilter((url) =>
        /^(https?:\/\/|data:[^,]*;base64,)/i.test(url)
          ? undefined
          : "an image url must be https://… or data:<type>;base64,…",
      ),
    ),
    detail: Schema.optional(Schema.Literals(["auto", "low", "high"])),
  }),
})

export const ContentPartSchema = Schema.Union([TextPartSchema, ImagePartSchema])
export type WirePart = typeof ContentPartSchema.Type

export const JsonObject = Schema.Record(Schema.String, Schema.Unknown)

export const ToolSchema = Schema.Struct({
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String.check(
      Schema.isPattern(/^[a-zA-Z0-9_-]{1,64}$/, {
        message: "a function name must be 1-64 letters, digits, _ or -",
      }),
    ),
    description: Schema.optional(Schema.String),
    parameters: Schema.optional(JsonObject),
    strict: Schema.optional(Schema.NullOr(Schema.Boolean)),
  }),
})

export const ToolChoiceSchema = Schema.Union([
  Schema.Literals(["auto", "none", "required"]),
  Schema.Struct({ type: Schema.Literal("function"), function: Schema.Struct({ name: Schema.String }) }),
])

/** A tool call as a reply shows it (a stored assistant message's `tool_calls`). */
export const ToolCallOut = Schema.Struct({
  id: Schema.String,
  type: Schema.Literal("function"),
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String }),
})
export type ToolCallOut = typeof ToolCallOut.Type

/** Wire parts (or a string) in DAC's vocabulary. */
export const contentOf = (content: string | ReadonlyArray<WirePart> | null | undefined): Content =>
  content == null
    ? ""
    : typeof content === "string"
      ? content
      : content.map((part) =>
          part.type === "text"
            ? part
            : {
                type: "image_url" as const,
                url: part.image_url.url,
                ...(part.image_url.detail === undefined ? {} : { detail: part.image_url.detail }),
              },
        )

/** DAC's parts back in the wire's words. */
export const wirePartsOf = (parts: ReadonlyArray<ContentPart>): ReadonlyArray<WirePart> =>
  parts.map((part) =>
    part.type === "text"
      ? { type: "text", text: part.text }
      : {
          type: "image_url",
          image_url: { url: part.url, ...(part.detail === undefined ? {} : { detail: part.detail }) },
        },
  )

/** A call as a reply shows it; Gemini's signature stays in DAC (it is sent back by DAC itself). */
export const toolCallOutOf = (call: ToolCall): ToolCallOut => ({
  id: call.id,
  type: "function",
  function: { name: call.name, arguments: call.arguments },
})
