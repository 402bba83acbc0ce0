const encoder = new TextEncoder()

/**
 * One SSE event, encoded once: every listener of a generation is sent the same bytes, so fan-out
 * costs no JSON encoding or allocation per listener.
 */
export interface Frame {
  readonly id: number
  readonly type: string
  /** The event's fields, for listeners that speak another format (the OpenAI-compatible endpoint). */
  readonly data: Readonly<Record<string, unknown>>
  readonly bytes: Uint8Array
}

export const frame = (id: number, type: string, data: Readonly<Record<string, unknown>>): Frame => ({
  id,
  type,
  data,
  bytes: encoder.encode(`id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`),
})

/** A comment line: keeps proxies and idle timers from closing a quiet stream. */
export const keepaliveBytes = encoder.encode(": keepalive\n\n")
