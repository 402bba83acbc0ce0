import { Readable, type ReadableOptions } from "node:stream"

/** After its last frame (`slow_consumer`), how long a dropped client's connection may take to flush it. */
export const slowConsumerCloseMs = 1_000

/** The response a body is piped into, as far as a body looks at it. */
interface Destination extends NodeJS.WritableStream {
  readonly writableFinished?: boolean
  readonly writableLength?: number
  readonly destroyed?: boolean
  /**
   * A ServerResponse's: its socket's inactivity timeout. Node counts a write completing, or the
   * kernel taking part of a pending one, as activity: the timeout fires when a write made no
   * progress (or when nothing was written at all) for `ms`.
   */
  readonly setTimeout?: (ms: number, callback: () => void) => unknown
  /** The connection (an HTTP/1.1 ServerResponse's socket). */
  readonly socket?: { readonly destroy: () => void } | null
}

/**
 * A reply body that cannot wedge its connection: the HTTP server pipes it into its response, and
 * from then on a write that makes no progress for `stalledWriteMs` (STALLED_WRITE_TIMEOUT_MS)
 * closes the connection (which destroys the body: its request ends as on a hang-up), and
 * `closeAfterFlush` closes it once the last bytes are flushed or after `slowConsumerCloseMs`.
 * The watch is Node's own socket timer: nothing per write here.
 */
export class WatchedBody extends Readable {
  /** The response it is piped into. */
  private destination: Destination | undefined
  /** The response's connection, taken when piped: a finished response lets go of it. */
  private socket: { readonly destroy: () => void } | undefined
  /** `closeAfterFlush` before it was piped: close the connection once it is. */
  private closeWhenPiped = false
  private readonly stalledWriteMs: number

  constructor(stalledWriteMs: number, options?: ReadableOptions) {
    super(options)
    this.stalledWriteMs = stalledWriteMs
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    const dest = destination as Destination
    this.destination = dest
    this.socket = dest.socket ?? undefined
    dest.setTimeout?.(this.stalledWriteMs, this.checkStalled)
    if (this.closeWhenPiped) this.closeSoon(dest)
    return super.pipe(destination, options)
  }

  /** The connection was inactive for the timeout: stalled if bytes wait for the client, else just quiet. */
  private readonly checkStalled = () => {
    const dest = this.destination
    if (dest !== undefined && (dest.writableLength ?? 0) > 0) this.closeConnection(dest)
  }

  /** Closes the connection once its last bytes are flushed, or after `slowConsumerCloseMs` anyway. */
  protected closeAfterFlush() {
    if (this.destination === undefined) this.closeWhenPiped = true
    else this.closeSoon(this.destination)
  }

  private closeSoon(dest: Destination) {
    if (dest.writableFinished === true) return this.closeConnection(dest)
    const close = () => {
      clearTimeout(timer)
      this.closeConnection(dest)
    }
    const timer = setTimeout(close, slowConsumerCloseMs)
    timer.unref()
    dest.once("finish", close)
    dest.once("close", () => clearTimeout(timer))
  }

  /** Destroys the connection under the response (the response itself when there is no socket). */
  private closeConnection(dest: Destination) {
    if (this.socket !== undefined) this.socket.destroy()
    else if (dest.destroyed !== true && "destroy" in dest && typeof dest.destroy === "function")
      dest.destroy()
  }
}

/** Bytes known in full (a finished reply from the store), under the same watch. */
export class BytesBody extends WatchedBody {
  constructor(bytes: Uint8Array, stalledWriteMs: number) {
    super(stalledWriteMs)
    this.push(bytes)
    this.push(null)
  }

  override _read() {}
}
