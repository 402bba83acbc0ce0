import type { RequestId } from "../domain/ids.ts"
import type { FrameHub } from "./frame-hub.ts"

const noRequests = new Set<RequestId>()

/**
 * Who a generation runs for, and the rule that stops it: requests waiting for the whole reply,
 * streams listening (the hub's), and streams dropped for falling behind that are held for
 * `RECONNECT_GRACE_MS`. When none is left on a running generation, it is abandoned: its fiber is
 * interrupted, which aborts the upstream call.
 */
export class Attachments {
  // Swapped for the shared empty one once the generation settled (see FrameHub.close).
  private waiting = new Set<RequestId>()
  private reconnecting = new Set<RequestId>()
  /**
   * Other replicas with listeners on this generation (with REDIS_URL, engine/relay.ts): replica id →
   * when its hold lapses unless renewed (a replica that died stops renewing).
   */
  private remote = new Map<string, number>()
  private readonly hub: FrameHub
  /**
   * Runs its callback when a reconnect's grace is over; undefined when there is none (or the
   * generation cannot be re-attached: a stateless completion). The client was told to reconnect
   * with `Last-Event-ID`: it should find the reply still going.
   */
  private readonly afterReconnectGrace: ((run: () => void) => void) | undefined
  /** Interrupts the generation's fiber when it is abandoned (nothing while it has none or ended). */
  private readonly abandon: () => void

  constructor(
    hub: FrameHub,
    afterReconnectGrace: ((run: () => void) => void) | undefined,
    abandon: () => void,
  ) {
    this.hub = hub
    this.afterReconnectGrace = afterReconnectGrace
    this.abandon = abandon
  }

  /** Counts a request that waits for the whole reply (Turns counts every request so at first). */
  wait(requestId: RequestId) {
    this.waiting.add(requestId)
  }

  /** Whether a request waits for its whole reply (a shutdown gives those a grace to finish). */
  isAwaited() {
    return this.waiting.size > 0
  }

  /**
   * A stream now listens for the request: it takes the request over from its wait, and a reconnect
   * from its hold.
   */
  listening(requestId: RequestId) {
    this.reconnecting.delete(requestId)
    this.waiting.delete(requestId)
  }

  /** A stream dropped for falling behind: its request is held until it reconnects or its grace is over. */
  holdForReconnect(requestId: RequestId) {
    if (this.afterReconnectGrace === undefined) return
    this.reconnecting.add(requestId)
    this.afterReconnectGrace(() => {
      if (this.reconnecting.delete(requestId) && this.isAbandoned()) this.abandon()
    })
  }

  /**
   * Forgets the request; true when it was the last one. A stream's own end (`keepHold`) leaves a
   * reconnect hold in place; an explicit detach (cancel) ends it.
   */
  leave(requestId: RequestId, keepHold: boolean) {
    this.waiting.delete(requestId)
    if (!keepHold) this.reconnecting.delete(requestId)
    return this.isAbandoned()
  }

  /** Replica `replica` has listeners on it until `until` (epoch ms), unless it renews. */
  holdRemote(replica: string, until: number) {
    this.remote.set(replica, until)
  }

  /** Replica `replica` has no listener left on it (or its hold lapsed); true when it was the last one. */
  releaseRemote(replica: string) {
    return this.remote.delete(replica) && this.isAbandoned()
  }

  /** Drops the holds not renewed by `now`; true when that left nobody. */
  expireRemote(now: number) {
    let expired = false
    for (const [replica, until] of this.remote) {
      if (until < now) expired = this.remote.delete(replica) || expired
    }
    return expired && this.isAbandoned()
  }

  isAbandoned() {
    return (
      this.waiting.size === 0 && this.hub.size === 0 && this.reconnecting.size === 0 && this.remote.size === 0
    )
  }

  /** The generation settled: nothing is held any more. */
  close() {
    this.waiting = noRequests
    this.reconnecting = noRequests
    this.remote.clear()
  }
}
