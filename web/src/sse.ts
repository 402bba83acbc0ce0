import { createParser } from "eventsource-parser"

/** One server-sent event of a reply stream: its `id` (a number, or null), name and parsed JSON. */
export interface StreamEvent {
  readonly id: number | null
  readonly event: string
  readonly data: Record<string, unknown>
}

/**
 * Reads a `text/event-stream` body to its end, handing each event to `onEvent` as it is complete
 * (eventsource-parser does the framing; chunks may split anywhere, inside UTF-8 characters too).
 * Resolves when the body ends; rejects when the connection fails. Comments (`: keepalive`) are skipped.
 */
export const readEventStream = async (
  body: ReadableStream<Uint8Array>,
  onEvent: (event: StreamEvent) => void,
): Promise<void> => {
  const parser = createParser({
    onEvent: (message) => {
      let data: Record<string, unknown>
      try {
        const parsed: unknown = JSON.parse(message.data)
        data = typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {}
      } catch {
        data = {}
      }
      const id = message.id === undefined || message.id === "" ? null : Number(message.id)
      onEvent({ id: Number.isFinite(id) ? id : null, event: message.event ?? "message", data })
    },
  })
  const decoder = new TextDecoder()
  const reader = body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      parser.feed(decoder.decode(value, { stream: true }))
    }
    parser.feed(decoder.decode())
  } finally {
    reader.releaseLock()
  }
}
