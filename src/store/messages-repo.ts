import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { type ToolCall, textOf } from "../domain/content.ts"
import { type StoreUnavailable, ThreadNotFound } from "../domain/errors.ts"
import { type MessageId, newMessageId, type OrgId, type RequestId, type ThreadId } from "../domain/ids.ts"
import { Message, type MessageStatus, type Usage } from "../domain/thread.ts"
import type { ChatMessage } from "../providers/provider.ts"
import { tracedFn } from "../telemetry/spans.ts"
import {
  chatMessageOfRow,
  type MessageRow,
  messageFromRow,
  type StructureRow,
  structureOf,
  toIso,
  toJsonb,
} from "./rows.ts"
import { orStoreUnavailable } from "./store-errors.ts"

/**
 * A turn to store: its own messages (the user's, or the results of tool calls) and the assistant's
 * `pending` reply; the ids of the first message and of the reply are made by the caller.
 */
export interface InsertTurn {
  readonly org: OrgId
  readonly threadId: ThreadId
  readonly requestId: RequestId
  readonly userMessageId: MessageId
  readonly assistantMessageId: MessageId
  readonly messages: ReadonlyArray<ChatMessage>
  readonly provider: string
  readonly model: string
  /** The process that runs the reply, and how long its lease holds before it is renewed. */
  readonly owner: string
  readonly leaseMs: number
}

export interface InsertedTurn {
  /** The turn's first message (the user's, or the first tool result). */
  readonly userMessage: Message
  /** Every message of the turn, in order (one for a user message). */
  readonly inputMessages: ReadonlyArray<Message>
  /** The assistant's message, `pending` until the turn ends. */
  readonly assistantMessage: Message
}

/** A thread as a thread actor starts from: what the next turn sends upstream, and where it stands. */
export interface LoadedThread {
  /**
   * Every settled message that goes upstream, in order: user messages, tool results and complete
   * replies (with their tool calls).
   */
  readonly history: ReadonlyArray<ChatMessage>
  /**
   * The thread's last complete reply (null before the first): what a new turn follows. A failed or
   * cancelled turn does not move it, so the same words sent again after one are the same request.
   */
  readonly lastSettledId: MessageId | null
}

/**
 * The text of a running reply to add: `text` appended to what is stored (when the stored
 * `last_event_id` is still `prevEventId`: the write before it landed), or, `full`, the whole text so
 * far (after a write whose fate is unknown). An empty append only renews the lease.
 */
export interface ReplyProgress {
  readonly messageId: MessageId
  readonly text: string
  readonly full: boolean
  readonly prevEventId: number | null
  readonly eventId: number | null
  /** The reply's tool calls so far, when they changed since the last write (written whole). */
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
}

export interface FinishTurn {
  readonly content: string
  readonly status: Exclude<MessageStatus, "pending" | "streaming">
  readonly usage: Usage | null
  readonly finishReason: string | null
  readonly errorCode: string | null
  /** The reply stream's id of the last delta in `content` (null when there was none). */
  readonly lastEventId?: number | null | undefined
  /** The tool calls the reply made (so far, when it did not complete); none: undefined. */
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
}

export interface SweepOptions {
  readonly ownedBy?: string | undefined
  readonly everything?: boolean | undefined
}

/** A stored reply with the stream id its text reaches. */
export interface StoredReply {
  readonly message: Message
  readonly lastEventId: number | null
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
      ...structureOf({ tool_calls: outcome.toolCalls ?? null, tool_call_id: null, parts: null }),
    },
    { disableChecks: true },
  )

const messageColumns = `id, thread_id, role, content, status, provider, model, usage, finish_reason, error_code,
  request_id, created_at, updated_at, tool_calls, tool_call_id, parts`

/** Messages of threads. The turn path costs two statements: one to start a turn, one to finish it. */
/**
 * Messages of threads. A turn costs one statement to store it and one to finish it; a reply's growth
 * is written in batches across replies (see ReplyProgress), one statement a tick.
 */
export class MessagesRepo extends Context.Service<
  MessagesRepo,
  {
    /** The thread of `org` with what a thread actor needs; none when it does not exist (or is another org's). */
    /** `before`: only what came before that request's turn (what the turn is asked after). */
    readonly loadThread: (
      org: OrgId,
      threadId: ThreadId,
      before?: RequestId,
    ) => Effect.Effect<Option.Option<LoadedThread>, StoreUnavailable>
    readonly insertTurn: (turn: InsertTurn) => Effect.Effect<InsertedTurn, ThreadNotFound | StoreUnavailable>
    /**
     * Writes the growth of running replies owned by `owner` and renews their leases, in one
     * statement; returns the ids it wrote (a reply finished or swept meanwhile is left as it is).
     */
    readonly saveProgress: (
      owner: string,
      leaseMs: number,
      progress: ReadonlyArray<ReplyProgress>,
    ) => Effect.Effect<ReadonlyArray<MessageId>, StoreUnavailable>
    /** Stores how a reply ended (by its owner: a reply another process took over is not touched). */
    readonly finishTurn: (
      message: Message,
      outcome: FinishTurn,
      owner?: string,
    ) => Effect.Effect<Message, StoreUnavailable>
    readonly listByThread: (
      org: OrgId,
      threadId: ThreadId,
    ) => Effect.Effect<ReadonlyArray<Message>, StoreUnavailable>
    readonly findAssistantByRequest: (
      org: OrgId,
      requestId: RequestId,
    ) => Effect.Effect<Option.Option<StoredReply>, StoreUnavailable>
    /**
     * Marks as `interrupted` the unfinished replies whose owner's lease ran out, those of `ownedBy`
     * (a process starting again under its own id runs none of them), or, `everything`, all of them
     * (a store only one process can open); returns how many.
     */
    readonly sweepInterrupted: (options?: SweepOptions) => Effect.Effect<number, StoreUnavailable>
  }
>()("dac/store/MessagesRepo") {
  static readonly layer = Layer.effect(
    MessagesRepo,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      const loadThread = tracedFn("MessagesRepo.loadThread")(
        Effect.fnUntraced(function* (org: OrgId, threadId: ThreadId, before?: RequestId) {
          // One round trip: the thread's existence for this org, and its messages in order.
          const rows = yield* sql<
            {
              id: string | null
              role: string | null
              content: string | null
              status: string | null
              request_id: string | null
            } & StructureRow
          >`
          SELECT m.id, m.role, m.content, m.status, m.request_id, m.tool_calls, m.tool_call_id, m.parts
          FROM threads t LEFT JOIN messages m ON m.thread_id = t.id
          WHERE t.id = ${threadId} AND t.org_id = ${org}
          ORDER BY m.seq`
          if (rows.length === 0) return Option.none<LoadedThread>()
          const history: Array<ChatMessage> = []
          let lastSettledId: MessageId | null = null
          for (const row of rows) {
            if (row.id === null) continue
            // The thread up to a turn: what it is asked after.
            if (before !== undefined && row.request_id === before) break
            // A failed or cancelled reply is not part of the conversation; the question before it is.
            if (row.status !== "complete") continue
            history.push(chatMessageOfRow({ ...row, role: row.role ?? "user", content: row.content ?? "" }))
            if (row.role === "assistant") lastSettledId = row.id as MessageId
          }
          return Option.some<LoadedThread>({ history, lastSettledId })
        }, orStoreUnavailable("MessagesRepo.loadThread")),
      )

      // One statement: the turn's messages and its pending reply, only when the thread is the org's
      // (none inserted otherwise).
      const insertTurn = tracedFn("MessagesRepo.insertTurn")(
        Effect.fnUntraced(function* (turn: InsertTurn) {
          const own = turn.messages.map((message, at) => ({
            id: at === 0 ? turn.userMessageId : newMessageId(),
            role: message.role,
            content: textOf(message.content),
            parts: typeof message.content === "string" ? null : message.content,
            toolCallId: message.toolCallId ?? null,
          }))
          const values = sql.join(
            ", ",
            false,
          )([
            ...own.map(
              (m, at) =>
                sql`(${m.id}::uuid, ${m.role}::text, ${m.content}::text, ${toJsonb(m.parts)}::jsonb,
                     ${m.toolCallId}::text, 'complete', ${at}::integer, NULL::text, NULL::timestamptz)`,
            ),
            sql`(${turn.assistantMessageId}::uuid, 'assistant', '', NULL::jsonb, NULL::text, 'pending',
                 ${own.length}::integer, ${turn.owner}::text, now() + ${turn.leaseMs} * interval '1 millisecond')`,
          ])
          const rows = yield* sql<{ id: string; created_at: Date | string }>`
          INSERT INTO messages (id, thread_id, org_id, role, content, parts, tool_call_id, status, provider,
                                model, request_id, owner, lease_until)
          SELECT v.id, t.id, ${turn.org}, v.role, v.content, v.parts, v.tool_call_id, v.status, ${turn.provider},
                 ${turn.model}, ${turn.requestId}::uuid, v.owner, v.lease_until
          FROM threads t, (VALUES ${values}) AS v (id, role, content, parts, tool_call_id, status, ord, owner,
                                                   lease_until)
          WHERE t.id = ${turn.threadId} AND t.org_id = ${turn.org}
          ORDER BY v.ord
          RETURNING id, created_at`
          if (rows.length === 0) {
            return yield* new ThreadNotFound({ message: `thread ${turn.threadId} not found` })
          }
          const createdAt = toIso(rows[0]!.created_at)
          const make = (
            id: MessageId,
            role: Message["role"],
            content: string,
            status: MessageStatus,
            structure: StructureRow,
          ) =>
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
                ...structureOf(structure),
              },
              { disableChecks: true },
            )
          const inputMessages = own.map((m) =>
            make(m.id, m.role, m.content, "complete", {
              tool_calls: null,
              tool_call_id: m.toolCallId,
              parts: m.parts,
            }),
          )
          return {
            userMessage: inputMessages[0]!,
            inputMessages,
            assistantMessage: make(turn.assistantMessageId, "assistant", "", "pending", {
              tool_calls: null,
              tool_call_id: null,
              parts: null,
            }),
          }
        }, orStoreUnavailable("MessagesRepo.insertTurn")),
      )

      const saveProgress = Effect.fn("MessagesRepo.saveProgress")(function* (
        owner: string,
        leaseMs: number,
        progress: ReadonlyArray<ReplyProgress>,
      ) {
        if (progress.length === 0) return []
        const values = sql.join(
          ", ",
          false,
        )(
          progress.map(
            (p) =>
              sql`(${p.messageId}::uuid, ${p.text}::text, ${p.full}::boolean, ${p.prevEventId}::integer, ${p.eventId}::integer,
                   ${toJsonb(p.toolCalls)}::jsonb)`,
          ),
        )
        const rows = yield* sql<{ id: string }>`
          UPDATE messages AS m SET
            content = CASE WHEN v.whole THEN v.text ELSE m.content || v.text END,
            last_event_id = COALESCE(v.event_id, m.last_event_id),
            status = CASE WHEN v.event_id IS NULL AND v.tool_calls IS NULL THEN m.status ELSE 'streaming' END,
            tool_calls = COALESCE(v.tool_calls, m.tool_calls),
            lease_until = now() + ${leaseMs} * interval '1 millisecond'
          FROM (VALUES ${values}) AS v (id, text, whole, prev_event_id, event_id, tool_calls)
          WHERE m.id = v.id AND m.owner = ${owner} AND m.status IN ('pending', 'streaming')
            AND (v.whole OR m.last_event_id IS NOT DISTINCT FROM v.prev_event_id)
          RETURNING m.id`
        return rows.map((row) => row.id as MessageId)
      }, orStoreUnavailable("MessagesRepo.saveProgress"))

      const finishTurn = tracedFn("MessagesRepo.finishTurn")(
        Effect.fnUntraced(function* (message: Message, outcome: FinishTurn, owner?: string) {
          const usage = toJsonb(outcome.usage)
          const rows = yield* sql<{ updated_at: Date | string }>`
          UPDATE messages
          SET content = ${outcome.content}, status = ${outcome.status}, usage = ${usage}::jsonb,
              finish_reason = ${outcome.finishReason}, error_code = ${outcome.errorCode},
              tool_calls = ${toJsonb(outcome.toolCalls)}::jsonb,
              last_event_id = ${outcome.lastEventId ?? null}::integer, lease_until = NULL, updated_at = now()
          WHERE id = ${message.message_id} AND (${owner ?? null}::text IS NULL OR owner = ${owner ?? null})
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
        const rows = yield* sql<MessageRow & { last_event_id: number | null }>`
          SELECT ${sql.literal(messageColumns)}, last_event_id FROM messages
          WHERE request_id = ${requestId} AND org_id = ${org} AND role = 'assistant'`
        return Option.map(
          Option.fromNullishOr(rows[0]),
          (row): StoredReply => ({ message: messageFromRow(row), lastEventId: row.last_event_id }),
        )
      }, orStoreUnavailable("MessagesRepo.findAssistantByRequest"))

      const sweepInterrupted = (options: SweepOptions = {}) =>
        sql<{ id: string }>`
        UPDATE messages SET status = 'interrupted', lease_until = NULL, updated_at = now()
        WHERE status IN ('pending', 'streaming')
          AND (${options.everything === true} OR lease_until IS NULL OR lease_until < now()
               OR owner = ${options.ownedBy ?? null})
        RETURNING id`.pipe(
          Effect.map((rows) => rows.length),
          orStoreUnavailable("MessagesRepo.sweepInterrupted"),
          Effect.withSpan("MessagesRepo.sweepInterrupted"),
        )

      return MessagesRepo.of({
        loadThread,
        insertTurn,
        saveProgress,
        finishTurn,
        listByThread,
        findAssistantByRequest,
        sweepInterrupted,
      })
    }),
  )
}
