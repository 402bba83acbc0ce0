import { type AddressInfo, connect, createServer, type Socket } from "node:net"

/**
 * A TCP proxy for fault tests: listens on 127.0.0.1 (random port) and forwards every connection to
 * `target`. `cut()` destroys every connection and resets each new one at once (the listener stays,
 * so the port is not lost to another process meanwhile); `stall()` keeps every connection open but
 * forwards nothing, new ones included (a database that hangs, or a network that drops packets);
 * `restore()` forwards again (after a stall, what was held back flows on).
 */
export interface TcpProxy {
  readonly port: number
  /** Connections forwarded so far (accepted while not cut). */
  readonly accepted: number
  /** Connections reset because the proxy was cut. */
  readonly refused: number
  /** Connections open now. */
  readonly open: number
  readonly isCut: boolean
  readonly cut: () => void
  readonly stall: () => void
  readonly restore: () => void
  readonly close: () => Promise<void>
}

export const startTcpProxy = async (target: { readonly host: string; readonly port: number }) => {
  const pairs = new Set<readonly [Socket, Socket]>()
  let cut = false
  let stalled = false
  let accepted = 0
  let refused = 0

  const server = createServer((client) => {
    if (cut) {
      refused++
      return void client.resetAndDestroy()
    }
    accepted++
    client.setNoDelay(true)
    const upstream = connect({ host: target.host, port: target.port, noDelay: true })
    const pair = [client, upstream] as const
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on("error", end).on("close", end)
    upstream.on("error", end).on("close", end)
    if (!stalled) forward(pair)
  })
  const forward = ([client, upstream]: readonly [Socket, Socket]) => {
    client.pipe(upstream)
    upstream.pipe(client)
  }
  const hold = ([client, upstream]: readonly [Socket, Socket]) => {
    client.unpipe(upstream)
    upstream.unpipe(client)
    client.pause()
    upstream.pause()
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })

  const proxy: TcpProxy = {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return accepted
    },
    get refused() {
      return refused
    },
    get open() {
      return pairs.size
    },
    get isCut() {
      return cut
    },
    cut: () => {
      cut = true
      stalled = false
      // A reset, not a polite FIN: what a client sees when the database host or the network goes.
      for (const [client, upstream] of [...pairs]) {
        client.resetAndDestroy()
        upstream.destroy()
      }
      pairs.clear()
    },
    stall: () => {
      if (stalled) return
      stalled = true
      for (const pair of pairs) hold(pair)
    },
    restore: () => {
      cut = false
      if (!stalled) return
      stalled = false
      for (const pair of pairs) forward(pair)
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.cut()
        server.close(() => resolve())
      }),
  }
  return proxy
}
