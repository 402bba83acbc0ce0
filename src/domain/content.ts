/**
 * What a conversation carries beyond plain text, in one vocabulary every adapter translates from:
 * content parts (text, images), the tools a request offers, the calls a reply makes and the results
 * sent back, and the output format asked for. OpenAI's Chat Completions shapes, renamed to camelCase
 * where DAC's own code reads them; the HTTP schemas (http/openai-request.ts) decode into these.
 */

export interface TextPart {
  readonly type: "text"
  readonly text: string
}

/** `url` is an `https:` URL or a `data:<mime>;base64,…` URL; `detail` matters to OpenAI only. */
export interface ImagePart {
  readonly type: "image_url"
  readonly url: string
  readonly detail?: "auto" | "low" | "high" | undefined
}

export type ContentPart = TextPart | ImagePart

/** A message's content: a string, or parts in order. */
export type Content = string | ReadonlyArray<ContentPart>

/** What a provider needs back on the next turn beside the call itself (Gemini's `thoughtSignature`). */
export interface ToolCallExtra {
  readonly thoughtSignature?: string | undefined
}

/** A function call a reply made: `arguments` is the JSON text of its arguments, as OpenAI carries it. */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly arguments: string
  readonly extra?: ToolCallExtra | undefined
}

/** A function the model may call; `parameters` is a JSON Schema of an object. */
export interface ToolDefinition {
  readonly name: string
  readonly description?: string | undefined
  readonly parameters?: Readonly<Record<string, unknown>> | undefined
  readonly strict?: boolean | undefined
}

/** `auto`, `none`, `required` (some call), or that one function. */
export type ToolChoice = "auto" | "none" | "required" | { readonly name: string }

export type ResponseFormat =
  | { readonly type: "json_object" }
  | {
      readonly type: "json_schema"
      readonly name: string
      readonly schema?: Readonly<Record<string, unknown>> | undefined
      readonly strict?: boolean | undefined
    }

/** The text of some content: its text parts joined (images have none). */
export const textOf = (content: Content): string =>
  typeof content === "string"
    ? content
    : content.reduce((text, part) => (part.type === "text" ? text + part.text : text), "")

/** A `data:` URL's media type and base64 payload; undefined for any other URL. */
export const dataUrlOf = (url: string): { readonly mediaType: string; readonly data: string } | undefined => {
  const match = /^data:([^;,]+)(?:;[^,]*)?;base64,/i.exec(url)
  return match === null ? undefined : { mediaType: match[1]!.toLowerCase(), data: url.slice(match[0].length) }
}

/** The decoded size of a `data:` URL's payload (MAX_IMAGE_BYTES bounds it); undefined for any other URL. */
export const inlineImageBytes = (url: string): number | undefined => {
  const inline = dataUrlOf(url)
  if (inline === undefined) return undefined
  const padding = inline.data.endsWith("==") ? 2 : inline.data.endsWith("=") ? 1 : 0
  return Math.floor((inline.data.length * 3) / 4) - padding
}

/** The media type an image URL names by its extension (Gemini's `fileData` wants one). */
export const mediaTypeOfUrl = (url: string): string => {
  const extension = /\.([a-z0-9]+)(?:[?#]|$)/i.exec(url)?.[1]?.toLowerCase()
  switch (extension) {
    case "png":
      return "image/png"
    case "gif":
      return "image/gif"
    case "webp":
      return "image/webp"
    case "heic":
      return "image/heic"
    default:
      return "image/jpeg"
  }
}
