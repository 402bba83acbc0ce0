import type { StreamEvent } from "./sse.ts"

export type ReplyStatus = "waiting" | "streaming" | "complete" | "cancelled" | "failed"

/** A reply as the page shows it, built from its stream's events (`applyEvent`). */
export interface Reply {
  readonly requestId: string | null
  readonly provider: string | null
  readonly model: string | null
  readonly coalesce: string | null
  readonly ttftMs: number | null
  readonly latencyMs: number | null
  readonly text: string
  readonly status: ReplyStatus
  readonly error: { readonly code: string; readonly message: string; readonly retryable: boolean } | null
  /** The last generation event applied (ids from 2 on); a reconnect sends it as `Last-Event-ID`. */
  readonly lastId: number
  /** A stored reply (no generation in memory) sends its whole text again: replace, do not append. */
  readonly replaceNext: boolean
}

export const emptyReply: Reply = {
  requestId: null,
  provider: null,
  model: null,
  coalesce: null,
  ttftMs: null,
  latencyMs: null,
  text: "",
  status: "waiting",
  error: null,
  lastId: -1,
  replaceNext: false,
}

export const isTerminal = (status: ReplyStatus) =>
  status === "complete" || status === "cancelled" || status === "failed"

const str = (value: unknown): string | null => (typeof value === "string" ? value : null)
const num = (value: unknown): number | null => (typeof value === "number" ? value : null)

/**
 * One event applied to the reply. A generation event (id ≥ 2) already applied is ignored, so a
 * replay after a reconnect adds no duplicate; `reconnected` marks the first events of a re-attach.
 */
export const applyEvent = (reply: Reply, event: StreamEvent, reconnected = false): Reply => {
  if (isTerminal(reply.status)) return reply
  // The gateway ended this stream for falling behind and holds the reply for a reconnect: its id is
  // this stream's own, so the reply is unchanged and the reconnect resumes after `lastId`.
  if (event.event === "error" && event.data.code === "slow_consumer") return reply
  const id = event.id
  if (id !== null && id >= 2 && id <= reply.lastId) return reply
  const next: Reply = id !== null && id >= 2 ? { ...reply, lastId: id } : reply
  const data = event.data
  switch (event.event) {
    case "meta": {
      if (data.ttft_ms !== undefined) return { ...next, ttftMs: num(data.ttft_ms), status: "streaming" }
      // A re-attach names itself a follower: the reply's role is the one of its first request. Its
      // request id is the one this stream serves (a new one when the old is still seen listening).
      return {
        ...next,
        requestId: str(data.request_id) ?? next.requestId,
        provider: str(data.provider) ?? next.provider,
        model: str(data.model) ?? next.model,
        coalesce: next.coalesce ?? str(data.coalesce),
        replaceNext: reconnected && data.generation_id === undefined,
      }
    }
    case "delta": {
      const text = str(data.text) ?? ""
      return {
        ...next,
        status: "streaming",
        // A stored reply's whole text (`replace`, or a stored stream joined after a reconnect).
        text: next.replaceNext || data.replace === true ? text : next.text + text,
        replaceNext: false,
      }
    }
    case "done":
      return { ...next, status: "complete", latencyMs: num(data.latency_ms) }
    case "cancelled":
      return { ...next, status: "cancelled" }
    case "error":
      return {
        ...next,
        status: "failed",
        error: {
          code: str(data.code) ?? "error",
          message: str(data.message) ?? "the reply failed",
          retryable: data.retryable === true,
        },
      }
    default:
      return next
  }
}
