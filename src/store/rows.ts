import type { ContentPart, ToolCall } from "../domain/content.ts"
import { toolCallOutOf, wirePartsOf } from "../domain/content-schema.ts"
import type { MessageId, RequestId, ThreadId } from "../domain/ids.ts"
import { Message, type MessageStatus, type Role, Thread, type Usage } from "../domain/thread.ts"
import type { ChatMessage } from "../providers/provider.ts"

/** Rows as the driver returns them: timestamps may come back as Date or text, jsonb as object or text. */
export interface ThreadRow {
  readonly id: string
  readonly title: string | null
  readonly created_at: Date | string
}

/** A message's structure (migration 0006): jsonb in DAC's own shapes (domain/content.ts). */
export interface StructureRow {
  readonly tool_calls: ReadonlyArray<ToolCall> | string | null
  readonly tool_call_id: string | null
  readonly parts: ReadonlyArray<ContentPart> | string | null
}

export interface MessageRow extends StructureRow {
  readonly id: string
  readonly thread_id: string
  readonly role: string
  readonly content: string
  readonly status: string
  readonly provider: string | null
  readonly model: string | null
  readonly usage: Usage | string | null
  readonly finish_reason: string | null
  readonly error_code: string | null
  readonly request_id: string | null
  readonly created_at: Date | string
  readonly updated_at: Date | string
}

export const toIso = (value: Date | string): string =>
  value instanceof Date ? value.toISOString() : new Date(value).toISOString()

const fromJson = <A>(value: A | string | null): A | null =>
  value === null ? null : typeof value === "string" ? (JSON.parse(value) as A) : value

/** jsonb as the driver wants it: text, or SQL NULL. */
export const toJsonb = (value: unknown): string | null =>
  value === undefined || value === null ? null : JSON.stringify(value)

/** A message's tool calls and parts as the thread API shows them (absent when it has none). */
export const structureOf = (row: StructureRow): Pick<Message, "tool_calls" | "tool_call_id" | "parts"> => {
  const calls = fromJson(row.tool_calls)
  const parts = fromJson(row.parts)
  return {
    ...(calls === null || calls.length === 0 ? {} : { tool_calls: calls.map(toolCallOutOf) }),
    ...(row.tool_call_id === null ? {} : { tool_call_id: row.tool_call_id }),
    ...(parts === null ? {} : { parts: wirePartsOf(parts) }),
  }
}

/**
 * A settled message as it goes upstream again: the same object the thread actor built when the turn
 * settled (thread-actors.ts), so a conversation reloaded from the store is the one it had in memory.
 */
export const chatMessageOfRow = (row: { readonly role: string; readonly content: string } & StructureRow) =>
  conversationMessage(
    row.role as ChatMessage["role"],
    row.content,
    fromJson(row.parts) ?? undefined,
    fromJson(row.tool_calls) ?? undefined,
    row.tool_call_id ?? undefined,
  )

/** One message of a conversation, keys only where they hold something (one shape, memory and store alike). */
export const conversationMessage = (
  role: ChatMessage["role"],
  text: string,
  parts?: ReadonlyArray<ContentPart> | undefined,
  toolCalls?: ReadonlyArray<ToolCall> | undefined,
  toolCallId?: string | undefined,
): ChatMessage => ({
  role,
  content: parts ?? text,
  ...(toolCalls === undefined || toolCalls.length === 0 ? {} : { toolCalls }),
  ...(toolCallId === undefined ? {} : { toolCallId }),
})

// Rows are trusted (the gateway wrote them), so they are mapped without a decode pass.
export const threadFromRow = (row: ThreadRow): Thread =>
  new Thread(
    { thread_id: row.id as ThreadId, title: row.title, created_at: toIso(row.created_at) },
    { disableChecks: true },
  )

export const messageFromRow = (row: MessageRow): Message =>
  new Message(
    {
      message_id: row.id as MessageId,
      thread_id: row.thread_id as ThreadId,
      role: row.role as Role,
      content: row.content,
      status: row.status as MessageStatus,
      provider: row.provider,
      model: row.model,
      usage: fromJson(row.usage),
      finish_reason: row.finish_reason,
      error_code: row.error_code,
      request_id: row.request_id as RequestId | null,
      created_at: toIso(row.created_at),
      updated_at: toIso(row.updated_at),
      ...structureOf(row),
    },
    { disableChecks: true },
  )
