import type { MessageId, RequestId, ThreadId } from "../domain/ids.ts"
import { Message, type MessageStatus, type Role, Thread, type Usage } from "../domain/thread.ts"

/** Rows as the driver returns them: timestamps may come back as Date or text, jsonb as object or text. */
export interface ThreadRow {
  readonly id: string
  readonly title: string | null
  readonly created_at: Date | string
}

export interface MessageRow {
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

const toUsage = (value: Usage | string | null): Usage | null =>
  value === null ? null : typeof value === "string" ? (JSON.parse(value) as Usage) : value

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
      usage: toUsage(row.usage),
      finish_reason: row.finish_reason,
      error_code: row.error_code,
      request_id: row.request_id as RequestId | null,
      created_at: toIso(row.created_at),
      updated_at: toIso(row.updated_at),
    },
    { disableChecks: true },
  )
