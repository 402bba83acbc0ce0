/**
 * Loaded into a gateway under test (`node --import ./bench/own-time.ts`): measures the time each
 * request spends in the gateway itself, from the server's `request` event to the reply's `finish`,
 * minus the time its upstream call took (undici dispatch → response end). On a machine where the
 * load generator, the upstream and the gateway share the cores, the client's latency also carries
 * how much the gateway's CPU slowed the other two; this is what the gateway's own event loop added.
 *
 * A request and its upstream call are matched by the bench's marker: the client sends
 * `x-bench-id: N` and the content `bench N`, which the gateway forwards in the upstream body (no
 * AsyncLocalStorage: its hooks would slow the gateway down). The bench sends SIGUSR2 to start
 * recording and again to write the figures, as JSON `{ownMs: number[]}`, to the file named by
 * OWN_TIME_FILE. Requests with no upstream call (rejected, served from the coalescer) are not
 * counted. Bench-only: never part of the gateway.
 */
import { writeFileSync } from "node:fs"
import { Server } from "node:http"
import { Pool } from "undici"

interface Timing {
  readonly arrivedAt: number
  dispatchedAt?: number
  upstreamEndedAt?: number
}

const inFlight = new Map<string, Timing>()
const marker = /"bench (\d+)"/
let recording = false
let ownMs: Array<number> = []

const emit = Server.prototype.emit
Server.prototype.emit = function (this: Server, event: string | symbol, ...args: Array<unknown>) {
  if (event !== "request" || !recording) return Reflect.apply(emit, this, [event, ...args])
  const id = (args[0] as { headers: Record<string, string | undefined> }).headers["x-bench-id"]
  if (id !== undefined) {
    const timing: Timing = { arrivedAt: performance.now() }
    inFlight.set(id, timing)
    const response = args[1] as { once(event: "finish", listener: () => void): void }
    response.once("finish", () => {
      inFlight.delete(id)
      const { dispatchedAt, upstreamEndedAt } = timing
      if (dispatchedAt === undefined || upstreamEndedAt === undefined) return
      ownMs.push(performance.now() - timing.arrivedAt - (upstreamEndedAt - dispatchedAt))
    })
  }
  return Reflect.apply(emit, this, [event, ...args])
} as typeof Server.prototype.emit

type Dispatch = Pool["dispatch"]
const dispatch = Pool.prototype.dispatch
Pool.prototype.dispatch = function (this: Pool, options, handler) {
  const id = typeof options.body === "string" ? marker.exec(options.body)?.[1] : undefined
  const timing = id === undefined ? undefined : inFlight.get(id)
  if (timing !== undefined) {
    timing.dispatchedAt = performance.now()
    const onResponseEnd = handler.onResponseEnd
    handler.onResponseEnd = function (this: unknown, ...args) {
      timing.upstreamEndedAt = performance.now()
      return onResponseEnd?.apply(this, args)
    } as typeof handler.onResponseEnd
  }
  return dispatch.call(this, options, handler)
} as Dispatch

process.on("SIGUSR2", () => {
  if (!recording) {
    ownMs = []
    inFlight.clear()
    recording = true
    return
  }
  recording = false
  writeFileSync(process.env.OWN_TIME_FILE ?? "own-time.json", JSON.stringify({ ownMs }))
})
