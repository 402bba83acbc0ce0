import { Deferred, Effect, Exit, Option, Stream } from "effect"
import { HttpServerResponse } from "effect/http"
import type { OrgId, RequestId } from "../domain/ids.ts"
import type { Message } from "../domain/thread.ts"
import { firstGenerationFrameId, type Generation, type GenerationOutcome } from "../engine/generations.ts"
import { frame, keepaliveFrame } from "../engine/sse-frames.ts"
import type { StartedTurn } from "../engine/turns.ts"

/** The headers of every reply stream: no caching, no proxy buffering, no compression. */
export const sseResponse = (body: Stream.Stream<Uint8Array>) =>
  HttpServerResponse.stream(body, {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" },
  })

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

/** The generation's own end: after it, the outcome is known (a `cancelled` may be one request's). */
const isGenerationTerminal = (type: string | undefined) => type === "done" || type === "error"

/**
 * What a listener's stream does when it ends, whatever format it spoke: after the generation's own
 * terminal frame, report the outcome; otherwise the request left (cancel, hang-up, slow), so report
 * it detached and detach it (which stops the generation when it was the last one).
 */
export const endListening = (
  generation: Generation,
  requestId: RequestId,
  exit: Exit.Exit<unknown, unknown>,
  lastType: string | undefined,
  onEnd: (outcome: GenerationOutcome | "detached") => void,
): Effect.Effect<void> => {
  if (Exit.isSuccess(exit) && isGenerationTerminal(lastType)) {
    return Effect.map(Deferred.await(generation.outcome), onEnd)
  }
  onEnd("detached")
  return generation.detach(requestId)
}

/**
 * One request listening to a generation: its head frames, then the generation's frames after
 * `afterId`, with the generation's keepalives. It ends after a terminal frame; a client hanging up
 * interrupts it, which detaches the request (and aborts the upstream when it was the last listener).
 */
export const listenStream = (
  requestId: RequestId,
  generation: Generation,
  coalesce: string,
  afterId: number,
  onEnd: (outcome: GenerationOutcome | "detached") => void,
): Stream.Stream<Uint8Array> => {
  let lastType: string | undefined
  let lastId = afterId
  const frames = generation.listen(requestId, Math.max(afterId, firstGenerationFrameId - 1)).pipe(
    Stream.map((f) => {
      // A keepalive is no event: it moves neither the resume point nor the end.
      if (f !== keepaliveFrame) {
        lastType = f.type
        lastId = f.id
      }
      return f.bytes
    }),
    Stream.catchTag("SlowListener", (slow) =>
      Stream.succeed(
        frame(slow.lastId + 1, "error", {
          code: "slow_consumer",
          message: `this client fell too far behind; reconnect with Last-Event-ID: ${Math.max(slow.lastId, lastId)} to resume`,
          retryable: true,
        }).bytes,
      ),
    ),
  )
  return Stream.concat(
    Stream.fromIterable(headFrames(requestId, generation, coalesce, afterId)),
    frames,
  ).pipe(Stream.onExit((exit) => endListening(generation, requestId, exit, lastType, onEnd)))
}

/** A fresh streamed turn. */
export const turnStream = (turn: StartedTurn) =>
  sseResponse(listenStream(turn.requestId, turn.generation, turn.coalesce, -1, turn.record))

/**
 * A finished reply no longer in memory, from the store: the whole text as one `delta`, then its
 * terminal event. (A client resuming that late should replace what it has, not append.)
 */
export const storedReplyStream = (requestId: RequestId, message: Message, afterId: number) => {
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
  return sseResponse(Stream.fromIterable(frames.map((f) => f.bytes)))
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
