/**
 * Loaded into the gateway by bench/turn-burst.ts (`node --import ./bench/burst-probe.ts`), bench only,
 * never part of the gateway: a timeline per streamed turn as the gateway's own process sees it, and
 * its event loop's delay. No AsyncLocalStorage, no change to src/.
 *
 * Per request marked `x-burst-id: N` (the bench sends the content `hi N`, which the gateway forwards
 * upstream): when Node emitted the `request`, when the upstream call was dispatched (undici
 * `Pool.dispatch`), when the upstream answered (headers) and sent its first body bytes, when the
 * response's headers were written and when its first body bytes were written (the `ping`). Times are
 * `performance.timeOrigin + performance.now()` (ms, wall clock) so the bench can line them up with
 * its own.
 *
 * SIGUSR2 starts recording (clears); SIGUSR2 again writes `{requests, loop}` to BURST_PROBE_FILE.
 */
import { writeFileSync } from "node:fs"
import { Server } from "node:http"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Pool } from "undici"

interface Timeline {
  arrived: number
  headersWritten?: number
  firstWrite?: number
  dispatched?: number
  upstreamHeaders?: number
  upstreamFirstData?: number
}

const now = () => performance.timeOrigin + performance.now()
let timelines = new Map<string, Timeline>()
let recording = false
const loop = monitorEventLoopDelay({ resolution: 1 })
const marker = /"hi (\d+)"/

const emit = Server.prototype.emit
Server.prototype.emit = function (this: Server, event: string | symbol, ...args: Array<unknown>) {
  if (event === "request" && recording) {
    const request = args[0] as { headers: Record<string, string | undefined> }
    const id = request.headers["x-burst-id"]
    if (id !== undefined) {
      const timeline: Timeline = { arrived: now() }
      timelines.set(id, timeline)
      const response = args[1] as {
        writeHead: (...a: Array<unknown>) => unknown
        write: (...a: Array<unknown>) => unknown
      }
      const writeHead = response.writeHead
      response.writeHead = function (this: unknown, ...a: Array<unknown>) {
        timeline.headersWritten ??= now()
        return Reflect.apply(writeHead, this, a)
      }
      const write = response.write
      response.write = function (this: unknown, ...a: Array<unknown>) {
        timeline.firstWrite ??= now()
        return Reflect.apply(write, this, a)
      }
    }
  }
  return Reflect.apply(emit, this, [event, ...args])
} as typeof Server.prototype.emit

type Dispatch = Pool["dispatch"]
const dispatch = Pool.prototype.dispatch
Pool.prototype.dispatch = function (this: Pool, options, handler) {
  const body =
    typeof options.body === "string"
      ? options.body
      : options.body instanceof Uint8Array
        ? Buffer.from(options.body).toString("utf8")
        : undefined
  const id = body === undefined ? undefined : marker.exec(body)?.[1]
  const timeline = id === undefined ? undefined : timelines.get(id)
  if (timeline !== undefined) {
    timeline.dispatched = now()
    const onResponseStart = handler.onResponseStart
    handler.onResponseStart = function (this: unknown, ...a) {
      timeline.upstreamHeaders ??= now()
      return onResponseStart?.apply(this, a)
    } as typeof handler.onResponseStart
    const onResponseData = handler.onResponseData
    handler.onResponseData = function (this: unknown, ...a) {
      timeline.upstreamFirstData ??= now()
      return onResponseData?.apply(this, a)
    } as typeof handler.onResponseData
  }
  return dispatch.call(this, options, handler)
} as Dispatch

process.on("SIGUSR2", () => {
  if (!recording) {
    timelines = new Map()
    loop.reset()
    loop.enable()
    recording = true
    return
  }
  recording = false
  loop.disable()
  const ms = (ns: number) => ns / 1e6
  writeFileSync(
    process.env.BURST_PROBE_FILE ?? "burst-probe.json",
    JSON.stringify({
      requests: Object.fromEntries(timelines),
      loop: {
        p50: ms(loop.percentile(50)),
        p99: ms(loop.percentile(99)),
        max: ms(loop.max),
        mean: ms(loop.mean),
      },
    }),
  )
})
