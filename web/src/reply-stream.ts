import { ApiError, type Auth, authHeaders, errorOf, request } from "./api.ts"
import { applyEvent, emptyReply, isTerminal, type Reply } from "./reply.ts"
import { readEventStream } from "./sse.ts"

/** The gateway holds a reply whose stream dropped for RECONNECT_GRACE_MS instead of cancelling it. */
const holdOnDisconnect = { "x-dac-on-disconnect": "hold" }

export interface ReplyCallbacks {
  readonly onUpdate: (reply: Reply) => void
  /** A line for people (and screen readers): connection lost, reconnected. */
  readonly onNote: (note: string) => void
}

export interface ReplyRun {
  readonly done: Promise<Reply>
  /** Stop: the cancel endpoint; the stream then ends with `cancelled` and the partial text. */
  readonly stop: () => Promise<void>
}

const maxReconnects = 5
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Sends a message and follows its reply stream. When the connection drops before the terminal
 * event, it re-attaches (`GET …/stream/{request_id}` with `Last-Event-ID`) and continues; events
 * already applied are skipped, so the text has no gap and no duplicate.
 */
/** What to follow: a message to send, or a reply already running (re-joined, e.g. after a reload). */
export type ReplySource = { readonly send: unknown } | { readonly join: string }

export const streamReply = (
  auth: Auth,
  threadId: string,
  source: ReplySource,
  callbacks: ReplyCallbacks,
): ReplyRun => {
  let reply: Reply =
    "join" in source ? { ...emptyReply, requestId: source.join, status: "streaming" } : emptyReply
  let joining = "join" in source
  let stopped = false
  let reconnects = 0
  const abort = new AbortController()
  const update = (next: Reply) => {
    if (next !== reply) {
      reply = next
      callbacks.onUpdate(reply)
    }
  }
  const fail = (code: string, message: string) =>
    update({ ...reply, status: "failed", error: { code, message, retryable: true } })

  const follow = async (response: Response, reconnected: boolean, join = false) => {
    let announced = !reconnected || join
    try {
      await readEventStream(response.body!, (event) => {
        update(applyEvent(reply, event, reconnected))
        if (!announced && event.id !== null && event.id >= 2) {
          announced = true
          callbacks.onNote(`Reconnected: the reply continues from where it stopped, nothing lost.`)
        }
      })
    } catch {
      // the connection dropped: the caller reconnects
    }
    if (!announced && isTerminal(reply.status)) {
      callbacks.onNote(`Reconnected: the reply had already ended; it is shown in full.`)
    }
  }

  const run = async (): Promise<Reply> => {
    if ("send" in source) {
      const first = await request(`/api/threads/${encodeURIComponent(threadId)}/messages/stream`, {
        method: "POST",
        // A dropped connection does not cancel the reply: the page reconnects (Stop cancels it).
        headers: {
          ...authHeaders(auth),
          ...holdOnDisconnect,
          "content-type": "application/json",
          accept: "text/event-stream",
        },
        body: JSON.stringify(source.send),
        signal: abort.signal,
      })
      if (!first.ok) throw await errorOf(first)
      update({ ...reply, status: "streaming" })
      await follow(first, false)
    }
    let failures = 0
    while (!isTerminal(reply.status) && !abort.signal.aborted) {
      if (reply.requestId === null) {
        fail("connection_lost", "the connection dropped before the gateway named the request")
        break
      }
      const join = joining
      joining = false
      if (join) {
        callbacks.onNote("Re-joining the reply in progress…")
      } else {
        failures += 1
        if (failures > maxReconnects) {
          fail("connection_lost", `the connection dropped and ${maxReconnects} reconnects failed`)
          break
        }
        callbacks.onNote(`Connection lost; reconnecting (attempt ${failures} of ${maxReconnects})…`)
        await sleep(Math.min(250 * 2 ** (failures - 1), 4000))
      }
      let response: Response
      try {
        response = await request(
          `/api/threads/${encodeURIComponent(threadId)}/stream/${encodeURIComponent(reply.requestId)}`,
          {
            headers: {
              ...authHeaders(auth),
              ...holdOnDisconnect,
              accept: "text/event-stream",
              "last-event-id": String(reply.lastId),
            },
            signal: abort.signal,
          },
        )
      } catch {
        continue
      }
      if (!response.ok) {
        if (response.status >= 500) continue
        const error = await errorOf(response)
        fail(error.code, error.message)
        break
      }
      const before = reply.lastId
      if (!join) reconnects += 1
      await follow(response, true, join)
      if (reply.lastId > before) failures = 0
    }
    if (!isTerminal(reply.status)) update({ ...reply, status: "cancelled" })
    if (reconnects > 0 && reply.status === "cancelled" && !stopped) {
      callbacks.onNote(
        "The connection dropped and the gateway stopped the reply (no other client was following it); the text so far is kept.",
      )
    }
    return reply
  }

  const stop = async () => {
    if (isTerminal(reply.status)) return
    stopped = true
    if (reply.requestId === null) {
      abort.abort()
      return
    }
    try {
      const response = await request(`/api/threads/cancel/${encodeURIComponent(reply.requestId)}`, {
        method: "POST",
        headers: authHeaders(auth),
      })
      if (!response.ok && response.status !== 404) throw await errorOf(response)
    } catch (error) {
      callbacks.onNote(`Stop failed: ${error instanceof ApiError ? error.message : String(error)}`)
    }
  }

  return { done: run(), stop }
}
