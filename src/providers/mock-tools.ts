import { textOf } from "../domain/content.ts"
import { type ProviderEvent, type ProviderRequest, textDelta, toolCallDelta } from "./provider.ts"

/**
 * The mock's tool-calling model (`mock/tools`), so a whole tool loop runs with no network: given
 * tools and no result yet, it calls the chosen one (the named `tool_choice`, else the first) with
 * arguments that fit its JSON Schema, streamed in two fragments as real providers split them; once
 * the conversation ends with tool results, it answers with text quoting them.
 */

/** A value of the schema's type: its first enum value or const, else a fixed sample per type. */
export const sampleOf = (schema: unknown): unknown => {
  if (typeof schema !== "object" || schema === null) return "sample"
  const s = schema as Record<string, unknown>
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0]
  if ("const" in s) return s.const
  if (s.default !== undefined) return s.default
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type
  switch (type) {
    case "string":
      return "sample"
    case "integer":
    case "number":
      return typeof s.minimum === "number" ? s.minimum : 1
    case "boolean":
      return true
    case "array":
      return s.items === undefined ? [] : [sampleOf(s.items)]
    case "null":
      return null
    default:
      return objectOf(s)
  }
}

/** Every required property, filled by its type. */
const objectOf = (schema: Record<string, unknown>) => {
  const properties = (
    typeof schema.properties === "object" && schema.properties !== null ? schema.properties : {}
  ) as Record<string, unknown>
  const required = Array.isArray(schema.required) ? (schema.required as ReadonlyArray<unknown>) : []
  const value: Record<string, unknown> = {}
  for (const name of required) {
    if (typeof name === "string") value[name] = sampleOf(properties[name])
  }
  return value
}

let calls = 0

export const mockToolTurn = (
  request: ProviderRequest,
): { readonly events: ReadonlyArray<ProviderEvent>; readonly finish: string } => {
  // The results answering the last assistant turn: the tail of `tool` messages.
  const results = []
  for (let i = request.messages.length - 1; i >= 0 && request.messages[i]!.role === "tool"; i--) {
    results.unshift(request.messages[i]!)
  }
  const tools = request.tools ?? []
  const choice = request.toolChoice
  if (results.length === 0 && tools.length > 0 && choice !== "none") {
    const tool = (typeof choice === "object" && tools.find((t) => t.name === choice.name)) || tools[0]!
    const args = JSON.stringify(sampleOf(tool.parameters ?? { type: "object" }))
    const half = Math.floor(args.length / 2)
    const id = `call_mock_${(++calls).toString(36)}`
    return {
      events: [
        toolCallDelta(0, args.slice(0, half), { id, name: tool.name }),
        toolCallDelta(0, args.slice(half)),
      ],
      finish: "tool_calls",
    }
  }
  const text =
    results.length === 0
      ? "No tool to call."
      : `The tool said: ${results.map((result) => JSON.stringify(textOf(result.content))).join(", ")}`
  // Word by word, as the other mock models stream.
  return { events: (text.match(/\S+\s*|\s+/g) ?? [text]).map(textDelta), finish: "stop" }
}
