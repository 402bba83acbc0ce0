const encoder = new TextEncoder()

/**
 * One SSE event, encoded once: every listener of a generation is sent the same bytes, so fan-out
 * costs no JSON encoding or allocation per listener.
 */
export interface Frame {
  readonly id: number
  readonly type: string
  readonly bytes: Uint8Array
}

export const frame = (id: number, type: string, data: object): Frame => ({
  id,
  type,
  bytes: encoder.encode(`id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`),
})

/** A comment line: keeps proxies and idle timers from closing a quiet stream. */
export const keepaliveBytes = encoder.encode(": keepalive\n\n")
