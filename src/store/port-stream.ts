import { Duplex } from "node:stream"
import type { MessagePort } from "node:worker_threads"

/**
 * A byte stream over one end of a `MessageChannel`: how the embedded store's connections travel
 * between the gateway's thread and the store's, with no socket anyone else could connect to.
 *
 * Writes are gathered until the current burst of work is done and leave as one message (the
 * protocol's replies come in pieces, five or more per query: one message each would be a message
 * each). The message is a fresh, exactly sized copy whose buffer is transferred, not cloned: a
 * `Buffer` is often a view into a shared 8 KiB pool, which structured cloning would copy whole.
 */
export class PortStream extends Duplex {
  readonly #port: MessagePort
  #pending: Array<Uint8Array> = []
  #pendingBytes = 0
  #closed = false

  constructor(port: MessagePort) {
    super()
    this.#port = port
    port.on("message", (chunk: Uint8Array) => {
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    })
    // The other end closed (its connection ended, or its thread stopped): end this one.
    port.once("close", () => {
      this.#closed = true
      this.push(null)
      this.destroy()
    })
  }

  /** pglite-socket's handler asks its socket for these; a channel has no Nagle and no peer address. */
  setNoDelay(): this {
    return this
  }
  readonly remoteAddress = "embedded-store-channel"
  readonly remotePort = 0

  override _read(): void {
    // Messages are pushed as they arrive: the reader (a PostgreSQL connection) always drains them.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#pending.length === 0) process.nextTick(() => this.#flush())
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.byteLength
    callback()
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#flush()
    this.#close()
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#flush()
    this.#close()
    callback(error)
  }

  #flush(): void {
    if (this.#pending.length === 0 || this.#closed) return
    const message = new Uint8Array(this.#pendingBytes)
    let offset = 0
    for (const chunk of this.#pending) {
      message.set(chunk, offset)
      offset += chunk.byteLength
    }
    this.#pending = []
    this.#pendingBytes = 0
    this.#port.postMessage(message, [message.buffer])
  }

  #close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#port.close()
  }
}
