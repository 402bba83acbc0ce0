import type { Readable } from "node:stream"
import { HttpServerResponse } from "effect/http"
import type { CoalesceRole } from "../domain/chat.ts"
import type { RequestId } from "../domain/ids.ts"
import type { Message } from "../domain/thread.ts"
import { firstGenerationFrameId } from "../engine/frame-hub.ts"
import type { Generation, GenerationOutcome } from "../engine/generations.ts"
import { frame } from "../engine/sse-frames.ts"
import type { StartedTurn } from "../engine/turns.ts"
import type { StoredReply } from "../store/messages-repo.ts"
import { type ListenerBody, type ListenerFormat, subscribeBody } from "./listener-body.ts"
import { BytesBody } from "./watched-body.ts"

const sseHeaders = {
  contentType: "text/event-stream",
  headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" },
}

/** A reply stream: no caching, no proxy buffering, no compression. */
export const sseResponse = (body: Readable | Uint8Array) => HttpServerResponse.raw(body, sseHeaders)

/** The request's own first frames: `ping` (before any upstream work) and `meta` (who serves it). */
const headFrames = (
  requestId: RequestId,
  generation: Generation,
  coalesce: CoalesceRole,
  afterId: number,
  /** How many turns of the thread run or wait before this one. */
  queuePosition: number,
) =>
  [
    frame(0, "ping", {}),
    frame(1, "meta", {
      request_id: requestId,
      generation_id: generation.id,
      provider: generation.provider,
      model: generation.model,
      coalesce,
      queue_position: queuePosition,
    }),
  ]
    .filter((f) => f.id > afterId)
    .map((f) => f.bytes)

/** DAC's own SSE events: each frame's shared bytes. */
const dacFormat: ListenerFormat = {
  encode: (f) => f.bytes,
  fellBehind: (lastId) =>
    frame(lastId + 1, "error", {
      code: "slow_consumer",
      message: `this client fell too far behind; reconnect with Last-Event-ID: ${lastId} to resume`,
      retryable: true,
    }).bytes,
}

/**
 * One request listening to a generation: its head frames, then the generation's frames after
 * `afterId`, with the generation's keepalives. It ends after a terminal frame; a client hanging up
 * detaches the request (and aborts the upstream when it was the last listener).
 */
export const listenBody = (
  requestId: RequestId,
  generation: Generation,
  coalesce: CoalesceRole,
  afterId: number,
  onEnd: (outcome: GenerationOutcome | "detached") => void,
  /** STALLED_WRITE_TIMEOUT_MS. */
  stalledWriteMs: number,
  queuePosition = 0,
  /** The client asked to be held on a hang-up (`x-dac-on-disconnect: hold`): it will reconnect. */
  holdOnHangUp = false,
): ListenerBody =>
  subscribeBody(
    generation,
    requestId,
    afterId,
    dacFormat,
    headFrames(requestId, generation, coalesce, afterId, queuePosition),
    onEnd,
    stalledWriteMs,
    holdOnHangUp,
  )

/** A fresh streamed turn. */
export const turnStream = (turn: StartedTurn, stalledWriteMs: number, holdOnHangUp = false) =>
  sseResponse(
    listenBody(
      turn.requestId,
      turn.generation,
      turn.coalesce,
      -1,
      turn.record,
      stalledWriteMs,
      turn.queuePosition,
      holdOnHangUp,
    ),
  )

/** The terminal event of a stored reply, as its status says it ended. */
const storedTerminal = (id: number, message: Message) => {
  switch (message.status) {
    case "complete":
      return frame(id, "done", {
        message_id: message.message_id,
        finish_reason: message.finish_reason ?? "stop",
        usage: message.usage,
        latency_ms: Date.parse(message.updated_at) - Date.parse(message.created_at),
      })
    case "failed":
      return frame(id, "error", {
        code: message.error_code ?? "upstream_error",
        message: "the reply failed",
        retryable: false,
      })
    case "cancelled":
      return frame(id, "cancelled", {})
    default:
      // Cut off by a crash or a stop (or still owned by a process that stopped renewing it).
      return frame(id, "error", {
        code: "interrupted",
        message: "the reply was cut off before it finished; its text so far is above",
        retryable: true,
      })
  }
}

/**
 * A reply no longer in memory, from the store, with the ids it had live: its text (as stored, up to
 * the delta whose id it keeps) as one `delta` with that id, its tool calls (one `tool_call` each,
 * whole), then its terminal event. A client that
 * had all of it gets only the terminal event; one that had part of it gets the whole text marked
 * `replace: true` (the store keeps the text, not where each delta ended).
 */
export const storedReplyStream = (
  requestId: RequestId,
  reply: StoredReply,
  afterId: number,
  /** STALLED_WRITE_TIMEOUT_MS: a client reading none of it does not keep it (and its socket). */
  stalledWriteMs: number,
) => {
  const { message } = reply
  const textId = reply.lastEventId ?? firstGenerationFrameId
  const frames = [
    frame(0, "ping", {}),
    frame(1, "meta", {
      request_id: requestId,
      provider: message.provider ?? undefined,
      model: message.model ?? undefined,
      coalesce: "leader",
    }),
  ].filter((f) => f.id > afterId)
  if (message.content !== "" && afterId < textId) {
    frames.push(
      frame(textId, "delta", {
        text: message.content,
        ...(afterId >= firstGenerationFrameId ? { replace: true } : {}),
      }),
    )
  }
  // Its tool calls, each whole in one event, after the text (as a provider streams them).
  const calls = message.tool_calls ?? []
  calls.forEach((call, index) => {
    const id = textId + 1 + index
    if (id > afterId) {
      frames.push(
        frame(id, "tool_call", {
          index,
          id: call.id,
          name: call.function.name,
          arguments_delta: call.function.arguments,
        }),
      )
    }
  })
  frames.push(storedTerminal(textId + 1 + calls.length, message))
  return sseResponse(new BytesBody(Buffer.concat(frames.map((f) => f.bytes)), stalledWriteMs))
}

/**
 * `x-dac-on-disconnect: hold`: a client that reconnects by itself (the chat page) asks that its
 * hang-up not cancel the reply; it is held for `RECONNECT_GRACE_MS` instead. Without it a hang-up
 * cancels at once (the upstream is aborted when no request is left).
 */
export const holdsOnDisconnect = (headers: Readonly<Record<string, string | undefined>>) =>
  headers["x-dac-on-disconnect"]?.toLowerCase() === "hold"

/** `Last-Event-ID` as a number, or -1 (everything) when absent or malformed. */
export const lastEventId = (header: string | undefined) => {
  const n = header === undefined ? Number.NaN : Number(header)
  return Number.isInteger(n) && n >= 0 ? n : -1
}
