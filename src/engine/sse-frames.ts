const encoder = new TextEncoder()

/**
 * One SSE event. Its bytes are encoded once, the first time a listener asks, and then shared by
 * every listener: fan-out costs no encoding per listener, and a reply nobody streams (a
 * non-streaming or OpenAI-format listener) costs no SSE encoding at all.
 */
export interface Frame {
  readonly id: number
  readonly type: string
  /** The event's fields, for listeners that speak another format (the OpenAI-compatible endpoint). */
  readonly data: Readonly<Record<string, unknown>>
  readonly bytes: Uint8Array
}

class LazyFrame implements Frame {
  readonly id: number
  readonly type: string
  readonly data: Readonly<Record<string, unknown>>
  private encoded: Uint8Array | undefined
  constructor(id: number, type: string, data: Readonly<Record<string, unknown>>) {
    this.id = id
    this.type = type
    this.data = data
  }
  get bytes(): Uint8Array {
    this.encoded ??= encoder.encode(
      `id: ${this.id}\nevent: ${this.type}\ndata: ${JSON.stringify({ type: this.type, ...this.data })}\n\n`,
    )
    return this.encoded
  }
}

export const frame = (id: number, type: string, data: Readonly<Record<string, unknown>>): Frame =>
  new LazyFrame(id, type, data)

/** A comment line: keeps proxies and idle timers from closing a quiet stream. */
export const keepaliveBytes = encoder.encode(": keepalive\n\n")
