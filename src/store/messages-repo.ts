import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { type StoreUnavailable, ThreadNotFound } from "../domain/errors.ts"
import { type MessageId, newMessageId, type OrgId, type RequestId, type ThreadId } from "../domain/ids.ts"
import { Message, type MessageStatus, type Usage } from "../domain/thread.ts"
import type { ChatMessage } from "../providers/provider.ts"
import { tracedFn } from "../telemetry/spans.ts"
import { type MessageRow, messageFromRow, toIso } from "./rows.ts"
import { orStoreUnavailable } from "./store-errors.ts"

export interface StartTurn {
  readonly org: OrgId
  readonly threadId: ThreadId
  readonly requestId: RequestId
  readonly content: string
  readonly provider: string
  readonly model: string
}

export interface StartedTurn {
  readonly userMessage: Message
  /** The assistant's message, `pending` until the turn ends. */
  readonly assistantMessage: Message
  /** The conversation to send upstream: every completed message before this turn, then the new one. */
  readonly history: ReadonlyArray<ChatMessage>
}

export interface FinishTurn {
  readonly content: string
  readonly status: Exclude<MessageStatus, "pending" | "streaming">
  readonly usage: Usage | null
  readonly finishReason: string | null
  readonly errorCode: string | null
}

/** `message` as `outcome` leaves it (what `finishTurn` stores). */
export const withOutcome = (message: Message, outcome: FinishTurn, updatedAt: string): Message =>
  new Message(
    {
      ...message,
      content: outcome.content,
      status: outcome.status,
      usage: outcome.usage,
      finish_reason: outcome.finishReason,
      error_code: outcome.errorCode,
      updated_at: updatedAt,
    },
    { disableChecks: true },
  )

const messageColumns = `id, thread_id, role, content, status, provider, model, usage, finish_reason, error_code,
  request_id, created_at, updated_at`

/** Messages of threads. The turn path costs two statements: one to start a turn, one to finish it. */
export class MessagesRepo extends Context.Service<
  MessagesRepo,
  {
    readonly startTurn: (turn: StartTurn) => Effect.Effect<StartedTurn, ThreadNotFound | StoreUnavailable>
    readonly finishTurn: (message: Message, outcome: FinishTurn) => Effect.Effect<Message, StoreUnavailable>
    readonly listByThread: (
      org: OrgId,
      threadId: ThreadId,
    ) => Effect.Effect<ReadonlyArray<Message>, StoreUnavailable>
    readonly findAssistantByRequest: (
      org: OrgId,
      requestId: RequestId,
    ) => Effect.Effect<Option.Option<Message>, StoreUnavailable>
    /** Marks assistant messages a crash left `pending`/`streaming` as `interrupted`; returns how many. */
    readonly sweepInterrupted: Effect.Effect<number, StoreUnavailable>
  }
>()("dac/store/MessagesRepo") {
  static readonly layer = Layer.effect(
    MessagesRepo,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      // One round trip: check the thread belongs to the org, read its history and insert both
      // messages. The history CTE sees the snapshot before the insert, so it never includes them.
      const startTurn = tracedFn("MessagesRepo.startTurn")(
        Effect.fnUntraced(function* (turn: StartTurn) {
          const userId = newMessageId()
          const assistantId = newMessageId()
          const rows = yield* sql<{
            kind: "history" | "inserted"
            id: string | null
            role: string
            content: string
            created_at: Date | string | null
          }>`
          WITH thread AS (
            SELECT id FROM threads WHERE id = ${turn.threadId} AND org_id = ${turn.org}
          ), history AS (
            SELECT m.role, m.content, m.seq FROM messages m, thread
            WHERE m.thread_id = thread.id AND m.status = 'complete'
          ), inserted AS (
            INSERT INTO messages (id, thread_id, org_id, role, content, status, provider, model, request_id)
            SELECT v.id, thread.id, ${turn.org}, v.role, v.content, v.status,
                   ${turn.provider}, ${turn.model}, ${turn.requestId}::uuid
            FROM thread, (VALUES
              (${userId}::uuid, 'user', ${turn.content}, 'complete', 1),
              (${assistantId}::uuid, 'assistant', '', 'pending', 2)
            ) AS v (id, role, content, status, ord)
            ORDER BY v.ord
            RETURNING id, created_at
          )
          SELECT 'history' AS kind, NULL::uuid AS id, role, content, NULL::timestamptz AS created_at
          FROM (SELECT role, content FROM history ORDER BY seq) h
          UNION ALL
          SELECT 'inserted', id, '', '', created_at FROM inserted`
          const inserted = rows.filter((row) => row.kind === "inserted")
          if (inserted.length === 0) {
            return yield* new ThreadNotFound({ message: `thread ${turn.threadId} not found` })
          }
          const createdAt = toIso(inserted[0]!.created_at!)
          const make = (id: MessageId, role: "user" | "assistant", content: string, status: MessageStatus) =>
            new Message(
              {
                message_id: id,
                thread_id: turn.threadId,
                role,
                content,
                status,
                provider: turn.provider,
                model: turn.model,
                usage: null,
                finish_reason: null,
                error_code: null,
                request_id: turn.requestId,
                created_at: createdAt,
                updated_at: createdAt,
              },
              { disableChecks: true },
            )
          const history: Array<ChatMessage> = []
          for (const row of rows) {
            if (row.kind === "history")
              history.push({ role: row.role as ChatMessage["role"], content: row.content })
          }
          history.push({ role: "user", content: turn.content })
          return {
            userMessage: make(userId, "user", turn.content, "complete"),
            assistantMessage: make(assistantId, "assistant", "", "pending"),
            history,
          }
        }, orStoreUnavailable("MessagesRepo.startTurn")),
      )

      const finishTurn = tracedFn("MessagesRepo.finishTurn")(
        Effect.fnUntraced(function* (message: Message, outcome: FinishTurn) {
          const usage = outcome.usage === null ? null : JSON.stringify(outcome.usage)
          const rows = yield* sql<{ updated_at: Date | string }>`
          UPDATE messages
          SET content = ${outcome.content}, status = ${outcome.status}, usage = ${usage}::jsonb,
              finish_reason = ${outcome.finishReason}, error_code = ${outcome.errorCode}, updated_at = now()
          WHERE id = ${message.message_id}
          RETURNING updated_at`
          return withOutcome(message, outcome, rows[0] ? toIso(rows[0].updated_at) : message.updated_at)
        }, orStoreUnavailable("MessagesRepo.finishTurn")),
      )

      const listByThread = Effect.fn("MessagesRepo.listByThread")(function* (org: OrgId, threadId: ThreadId) {
        const rows = yield* sql<MessageRow>`
          SELECT ${sql.literal(messageColumns)} FROM messages
          WHERE thread_id = ${threadId} AND org_id = ${org} ORDER BY seq`
        return rows.map(messageFromRow)
      }, orStoreUnavailable("MessagesRepo.listByThread"))

      const findAssistantByRequest = Effect.fn("MessagesRepo.findAssistantByRequest")(function* (
        org: OrgId,
        requestId: RequestId,
      ) {
        const rows = yield* sql<MessageRow>`
          SELECT ${sql.literal(messageColumns)} FROM messages
          WHERE request_id = ${requestId} AND org_id = ${org} AND role = 'assistant'`
        return Option.map(Option.fromNullishOr(rows[0]), messageFromRow)
      }, orStoreUnavailable("MessagesRepo.findAssistantByRequest"))

      const sweepInterrupted = sql<{ id: string }>`
        UPDATE messages SET status = 'interrupted', updated_at = now()
        WHERE status IN ('pending', 'streaming') RETURNING id`.pipe(
        Effect.map((rows) => rows.length),
        orStoreUnavailable("MessagesRepo.sweepInterrupted"),
        Effect.withSpan("MessagesRepo.sweepInterrupted"),
      )

      return MessagesRepo.of({
        startTurn,
        finishTurn,
        listByThread,
        findAssistantByRequest,
        sweepInterrupted,
      })
    }),
  )
}
