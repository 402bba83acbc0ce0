import type { ResponseFormat } from "../domain/content.ts"

/**
 * `response_format: json_schema` as Anthropic's structured outputs take it. Source: Anthropic's
 * "Structured outputs" page (platform.claude.com/docs/en/build-with-claude/structured-outputs,
 * read 2026-12): generally available on the Claude API as `output_config: {format: {type:
 * "json_schema", schema}}` with no beta header; the beta form (`output_format` beside
 * `anthropic-beta: structured-outputs-2025-11-13`) is kept only "for a transition period", so DAC
 * sends the GA form. The reply is ordinary text (a `text` block, streamed as `text_delta`): the
 * JSON document, so the reply path is the text path. Models without structured outputs answer
 * 400, which is passed on.
 *
 * The page's "JSON Schema limitations": every object must say `additionalProperties: false`;
 * numeric bounds (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`),
 * string lengths (`minLength`, `maxLength`), array bounds other than `minItems` 0 or 1 (`maxItems`)
 * and string formats outside its list are refused. A schema written for OpenAI carries these
 * often, so DAC adjusts it as Anthropic's own SDKs do: each refused keyword leaves the schema and
 * is appended to the `description` of where it stood (the model still reads it; the API does not
 * enforce it), objects get `additionalProperties: false`, and `oneOf` (not on the page's list,
 * which has `anyOf`) becomes `anyOf`. Anything else is sent as written.
 *
 * `json_object` (any JSON, no schema) has no faithful form: a schema of `{type: "object"}` must
 * say `additionalProperties: false`, which admits only `{}`. capabilities.ts refuses it (400
 * naming the provider, asking for a json_schema) rather than answer a different question.
 */

type JsonSchema = Readonly<Record<string, unknown>>

/** String formats the page lists as supported. */
const supportedFormats = new Set([
  "date-time",
  "time",
  "date",
  "duration",
  "email",
  "hostname",
  "uri",
  "ipv4",
  "ipv6",
  "uuid",
])

const refusedKeywords = new Set([
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "maxItems",
])

/** Whether `keyword: value` is among what Anthropic refuses. */
const refused = (keyword: string, value: unknown) =>
  refusedKeywords.has(keyword) ||
  (keyword === "minItems" && value !== 0 && value !== 1) ||
  (keyword === "format" && !(typeof value === "string" && supportedFormats.has(value))) ||
  (keyword === "additionalProperties" && value !== false)

const isSchema = (value: unknown): value is JsonSchema =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const schemaMap = (value: unknown) =>
  isSchema(value)
    ? Object.fromEntries(Object.entries(value).map(([key, schema]) => [key, adjusted(schema)]))
    : value

const schemaList = (value: unknown) => (Array.isArray(value) ? value.map(adjusted) : value)

/** One schema (and the schemas inside it) in the subset Anthropic accepts. */
const adjusted = (schema: unknown): unknown => {
  if (!isSchema(schema)) return schema
  const out: Record<string, unknown> = {}
  const moved: Array<string> = []
  for (const [keyword, value] of Object.entries(schema)) {
    if (refused(keyword, value)) {
      moved.push(`${keyword}: ${JSON.stringify(value)}`)
      continue
    }
    switch (keyword) {
      case "properties":
      case "$defs":
      case "definitions":
        out[keyword] = schemaMap(value)
        break
      case "items":
        out[keyword] = Array.isArray(value) ? schemaList(value) : adjusted(value)
        break
      case "prefixItems":
      case "anyOf":
      case "allOf":
        out[keyword] = schemaList(value)
        break
      case "oneOf":
        out.anyOf = schemaList(value)
        break
      default:
        out[keyword] = value
    }
  }
  const type = schema.type
  if (type === "object" || (Array.isArray(type) && type.includes("object")) || isSchema(schema.properties)) {
    out.additionalProperties = false
  }
  if (moved.length > 0) {
    const said = typeof out.description === "string" && out.description !== "" ? `${out.description}\n\n` : ""
    out.description = `${said}{${moved.join(", ")}}`
  }
  return out
}

/** `output_config` for a `json_schema` format (capabilities.ts lets no other format get here). */
export const outputConfigOf = (format: ResponseFormat | undefined) =>
  format?.type === "json_schema" && format.schema !== undefined
    ? { output_config: { format: { type: "json_schema", schema: adjusted(format.schema) } } }
    : {}
