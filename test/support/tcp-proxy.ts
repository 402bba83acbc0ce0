import { type AddressInfo, connect, createServer, type Socket } from "node:net"

/**
 * A TCP proxy for fault tests: listens on 127.0.0.1 (random port) and forwards every connection to
 * `target`. `cut()` destroys every connection and resets each new one at once (the listener stays,
 * so the port is not lost to another process meanwhile); `restore()` forwards again.
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
  readonly restore: () => void
  readonly close: () => Promise<void>
}

export const startTcpProxy = async (target: { readonly host: string; readonly port: number }) => {
  const pairs = new Set<readonly [Socket, Socket]>()
  let cut = false
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
    client.pipe(upstream)
    upstream.pipe(client)
  })
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
      // A reset, not a polite FIN: what a client sees when the database host or the network goes.
      for (const [client, upstream] of [...pairs]) {
        client.resetAndDestroy()
        upstream.destroy()
      }
      pairs.clear()
    },
    restore: () => {
      cut = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.cut()
        server.close(() => resolve())
      }),
  }
  return proxy
}
