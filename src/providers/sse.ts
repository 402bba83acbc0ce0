import { Sse } from "effect/encoding"

/**
 * Incremental Server-Sent Events decoding over raw body bytes, one decoder per response.
 *
 * Bytes become text through one streaming TextDecoder, which holds back a UTF-8 sequence split
 * across reads until its last byte arrives; text becomes events through effect/encoding's
 * spec parser (LF, CR and CRLF line ends, even split between reads; multi-line `data:`; comment
 * lines such as `: OPENROUTER PROCESSING` ignored). Events are delivered synchronously from
 * `push`, so a provider adapter sees them in the socket's own callback, with no queue between.
 */
export interface SseDecoder {
  /** Feeds one body chunk. Returns an error message when a pending event grew past the size limit. */
  readonly push: (bytes: Uint8Array) => string | undefined
  /** The body ended: delivers a last event whose closing blank line never came. */
  readonly end: () => string | undefined
}

/** `event` is `"message"` when the event named none, as the SSE spec says. */
export type SseListener = (event: string, data: string) => void

/** A single event larger than this is a broken upstream, not a reply: fail rather than buffer forever. */
const defaultMaxEventBytes = 4 * 1024 * 1024

const streamOption = { stream: true } as const

export const makeSseDecoder = (onEvent: SseListener, maxEventBytes = defaultMaxEventBytes): SseDecoder => {
  const text = new TextDecoder()
  const parser = Sse.makeParser(
    (parsed) => {
      // `retry:` directives are for browsers reconnecting an EventSource; an LLM reply is never resumed that way.
      if (parsed._tag === "Event") onEvent(parsed.event, parsed.data)
    },
    { maxEventSize: maxEventBytes },
  )
  return {
    push: (bytes) => parser.feed(text.decode(bytes, streamOption))?.message,
    // Two line ends close whatever line and event are still open; a stream that already ended on a
    // blank line only gets empty lines, which dispatch nothing.
    end: () => parser.feed(`${text.decode()}\n\n`)?.message,
  }
}
