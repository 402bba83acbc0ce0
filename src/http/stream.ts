import type { Readable } from "node:stream"
import { Option } from "effect"
import { HttpServerResponse } from "effect/http"
import type { OrgId, RequestId } from "../domain/ids.ts"
import type { Message } from "../domain/thread.ts"
import type { Generation, GenerationOutcome } from "../engine/generations.ts"
import { frame } from "../engine/sse-frames.ts"
import type { StartedTurn } from "../engine/turns.ts"
import { type ListenerBody, type ListenerFormat, subscribeBody } from "./listener-body.ts"
import { BytesBody } from "./watched-body.ts"

const sseHeaders = {
  contentType: "text/event-stream",
  headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" },
}

/** A reply stream: no caching, no proxy buffering, no compression. */
export const sseResponse = (body: Readable | Uint8Array) => HttpServerResponse.raw(body, sseHeaders)

/** The request's own first frames: `ping` (before any upstream work) and `meta` (who serves it). */
const headFrames = (requestId: RequestId, generation: Generation, coalesce: string, afterId: number) =>
  [
    frame(0, "ping", {}),
    frame(1, "meta", {
      request_id: requestId,
      generation_id: generation.id,
      provider: generation.provider,
      model: generation.model,
      coalesce,
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
  coalesce: string,
  afterId: number,
  onEnd: (outcome: GenerationOutcome | "detached") => void,
  /** STALLED_WRITE_TIMEOUT_MS. */
  stalledWriteMs: number,
): ListenerBody =>
  subscribeBody(
    generation,
    requestId,
    afterId,
    dacFormat,
    headFrames(requestId, generation, coalesce, afterId),
    onEnd,
    stalledWriteMs,
  )

/** A fresh streamed turn. */
export const turnStream = (turn: StartedTurn, stalledWriteMs: number) =>
  sseResponse(listenBody(turn.requestId, turn.generation, turn.coalesce, -1, turn.record, stalledWriteMs))

/**
 * A finished reply no longer in memory, from the store: the whole text as one `delta`, then its
 * terminal event. (A client resuming that late should replace what it has, not append.)
 */
export const storedReplyStream = (
  requestId: RequestId,
  message: Message,
  afterId: number,
  /** STALLED_WRITE_TIMEOUT_MS: a client reading none of it does not keep it (and its socket). */
  stalledWriteMs: number,
) => {
  const frames = [
    frame(0, "ping", {}),
    frame(1, "meta", {
      request_id: requestId,
      provider: message.provider,
      model: message.model,
      coalesce: "leader",
    }),
    frame(2, "delta", { text: message.content }),
    message.status === "complete"
      ? frame(3, "done", {
          message_id: message.message_id,
          finish_reason: message.finish_reason ?? "stop",
          usage: message.usage,
          latency_ms: Date.parse(message.updated_at) - Date.parse(message.created_at),
        })
      : message.status === "failed"
        ? frame(3, "error", {
            code: message.error_code ?? "upstream_error",
            message: "the reply failed",
            retryable: false,
          })
        : frame(3, "cancelled", {}),
  ].filter((f) => f.id > afterId || f.id >= 2)
  return sseResponse(new BytesBody(Buffer.concat(frames.map((f) => f.bytes)), stalledWriteMs))
}

/** `Last-Event-ID` as a number, or -1 (everything) when absent or malformed. */
export const lastEventId = (header: string | undefined) => {
  const n = header === undefined ? Number.NaN : Number(header)
  return Number.isInteger(n) && n >= 0 ? n : -1
}

export const findGenerationFor = (
  byRequest: (requestId: RequestId) => Option.Option<Generation>,
  org: OrgId,
  requestId: RequestId,
) => Option.filter(byRequest(requestId), (generation) => generation.org === org)
