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
  /** Bumped by every fragment: the writer of a growing reply stores the calls when it moved. */
  version = 0

  /** Takes one fragment; its frame's data for the stream (`tool_call`). */
  add(event: Extract<ProviderEvent, { _tag: "ToolCallDelta" }>): EventData<"tool_call"> {
    this.version++
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

/**
 * The tool calls a new tool-result turn answers: those of the conversation's last assistant reply,
 * when no user message came after it (tool results of a turn whose reply failed may have: they are
 * answered again by a retry). None when the last reply made no call.
 */
export const pendingToolCalls = (history: ReadonlyArray<ChatMessage>): ReadonlyArray<ToolCall> => {
  for (let at = history.length - 1; at >= 0; at--) {
    const message = history[at]!
    if (message.role === "assistant") return message.toolCalls ?? []
    if (message.role !== "tool") return []
  }
  return []
}

/**
 * What is wrong with a send of tool results for `history`, in words naming the call; undefined when
 * they answer every pending call once (each provider wants every call of a reply answered).
 */
export const toolResultProblem = (
  history: ReadonlyArray<ChatMessage>,
  results: ReadonlyArray<ChatMessage>,
): string | undefined => {
  const pending = pendingToolCalls(history)
  const ids = pending.map((call) => call.id)
  const known = ids.length === 0 ? "it made none" : `its calls: ${ids.join(", ")}`
  const answered = new Set<string>()
  for (const [at, result] of results.entries()) {
    const id = result.toolCallId ?? ""
    if (!ids.includes(id)) {
      return `tool_results[${at}].tool_call_id: "${id}" matches no pending tool call of the thread's last reply (${known})`
    }
    if (answered.has(id)) return `tool_results[${at}].tool_call_id: "${id}" is answered twice`
    answered.add(id)
  }
  const missing = pending.filter((call) => !answered.has(call.id))
  if (missing.length > 0) {
    return `tool_results: no result for ${missing.map((call) => `"${call.id}" (${call.name})`).join(", ")}; send one result for each call of the thread's last reply (${known})`
  }
  return undefined
}

/**
 * Why a user message cannot follow `history` now: its last reply called tools that have no result
 * yet (every provider refuses a conversation that leaves a call unanswered, and the thread would keep
 * refusing). Undefined when it can.
 */
export const unansweredCallsProblem = (history: ReadonlyArray<ChatMessage>): string | undefined => {
  const last = history.at(-1)
  if (last?.role !== "assistant" || (last.toolCalls?.length ?? 0) === 0) return undefined
  const ids = last.toolCalls!.map((call) => `"${call.id}" (${call.name})`).join(", ")
  return `the thread's last reply called tools (${ids}): send their results first ({role:"tool", tool_results:[{tool_call_id, content}]})`
}

/**
 * The conversation as it goes upstream: a call answered again (the retry of a tool-result turn whose
 * reply failed) keeps only its last result, so every provider sees each call answered once. Applied
 * to the thread's messages as stored, in memory or reloaded alike.
 */
export const upstreamConversation = (messages: ReadonlyArray<ChatMessage>): ReadonlyArray<ChatMessage> => {
  const dropped = new Set<number>()
  let seen = new Set<string>()
  for (let at = messages.length - 1; at >= 0; at--) {
    const message = messages[at]!
    if (message.role !== "tool") {
      if (seen.size > 0) seen = new Set()
      continue
    }
    const id = message.toolCallId ?? ""
    if (seen.has(id)) dropped.add(at)
    else seen.add(id)
  }
  return dropped.size === 0 ? messages : messages.filter((_, at) => !dropped.has(at))
}
