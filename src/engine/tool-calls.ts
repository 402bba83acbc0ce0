import type { ToolCall } from "../domain/content.ts"
import type { EventData } from "../domain/stream-event.ts"
import type { ChatMessage, ProviderEvent, ProviderOptions } from "../providers/provider.ts"

/**
 * A reply's tool calls, put together from the adapter's `ToolCallDelta` fragments as they arrive:
 * the first fragment of a call names it, the rest extend its arguments. Fragments are kept as they
 * come and joined once (as the reply's text is): no string rebuilt per fragment.
 */
export class ToolCallAccumulator {
  private readonly calls: Array<{
    id: string
    name: string
    parts: Array<string>
    extra: ToolCall["extra"]
  }> = []

  /** Takes one fragment; its frame's data for the stream (`tool_call`). */
  add(event: Extract<ProviderEvent, { _tag: "ToolCallDelta" }>): EventData<"tool_call"> {
    let call = this.calls[event.index]
    if (call === undefined) {
      call = { id: event.id ?? "", name: event.name ?? "", parts: [], extra: event.extra }
      this.calls[event.index] = call
    } else {
      if (event.id !== undefined) call.id = event.id
      if (event.name !== undefined) call.name = event.name
      if (event.extra !== undefined) call.extra = event.extra
    }
    if (event.argumentsDelta !== "") call.parts.push(event.argumentsDelta)
    if (event.id === undefined) return { index: event.index, arguments_delta: event.argumentsDelta }
    const signature = event.extra?.thoughtSignature
    return {
      index: event.index,
      id: event.id,
      name: event.name,
      arguments_delta: event.argumentsDelta,
      ...(signature === undefined ? {} : { thought_signature: signature }),
    }
  }

  /** The calls made, in order; undefined when there were none. */
  result(): ReadonlyArray<ToolCall> | undefined {
    const calls = this.calls.filter((call) => call !== undefined)
    if (calls.length === 0) return undefined
    return calls.map((call) => ({
      id: call.id,
      name: call.name,
      // A call with no argument text at all takes no arguments: `{}`, as OpenAI would send.
      arguments: call.parts.length === 0 ? "{}" : call.parts.join(""),
      ...(call.extra === undefined ? {} : { extra: call.extra }),
    }))
  }
}

/**
 * Whether a turn must not share an upstream call (the coalescer's rule): a turn that offers tools or
 * carries tool calls or results (its answer drives actions: non-idempotent), or asks for an output
 * format the coalescing key does not cover.
 */
export const bypassesCoalescing = (
  options: ProviderOptions | undefined,
  conversation: ReadonlyArray<ChatMessage> | undefined,
): boolean => {
  if (options?.tools !== undefined && options.tools.length > 0) return true
  if (options?.responseFormat !== undefined) return true
  return conversation?.some((m) => m.role === "tool" || (m.toolCalls?.length ?? 0) > 0) ?? false
}
