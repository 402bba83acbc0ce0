import { monitorEventLoopDelay } from "node:perf_hooks"
import { Context, Effect, Layer, Schedule } from "effect"
import { processMetrics, setGauge } from "./metrics.ts"

/** The event-loop gauges cover this window; OTLP exports and scrapes read the last one. */
const windowMs = 5_000

/**
 * The process's own CPU, memory and event-loop delay as metrics. CPU and memory are read at every
 * `sample` (each scrape, so they are current); the event-loop delay is a window that a fiber closes
 * every 5 s (a scrape must not reset it, or two scrapers would each see half a window).
 */
export class ProcessMetrics extends Context.Service<
  ProcessMetrics,
  { readonly sample: Effect.Effect<void> }
>()("dac/ProcessMetrics") {
  static readonly layer = Layer.effect(
    ProcessMetrics,
    Effect.gen(function* () {
      const context = yield* Effect.context<never>()
      // The counter only adds: feed it what the process used since the last sample.
      let cpuSecondsSeen = 0
      const sample = Effect.sync(() => {
        const cpu = process.cpuUsage()
        const cpuSeconds = (cpu.user + cpu.system) / 1e6
        if (cpuSeconds > cpuSecondsSeen) {
          processMetrics.cpu.updateUnsafe(cpuSeconds - cpuSecondsSeen, context)
          cpuSecondsSeen = cpuSeconds
        }
        setGauge(processMetrics.residentMemory, {}, process.memoryUsage.rss(), context)
        setGauge(processMetrics.heapUsed, {}, process.memoryUsage().heapUsed, context)
      })

      const delay = monitorEventLoopDelay({ resolution: 10 })
      delay.enable()
      yield* Effect.addFinalizer(() => Effect.sync(() => delay.disable()))
      const closeWindow = Effect.sync(() => {
        // An empty histogram reports NaN and huge sentinels: no delay seen is 0.
        const seen = delay.count > 0
        setGauge(processMetrics.eventLoopDelayMean, {}, seen ? delay.mean / 1e9 : 0, context)
        setGauge(processMetrics.eventLoopDelayP99, {}, seen ? delay.percentile(99) / 1e9 : 0, context)
        setGauge(processMetrics.eventLoopDelayMax, {}, seen ? delay.max / 1e9 : 0, context)
        delay.reset()
      })

      yield* closeWindow
      yield* sample
      yield* Effect.andThen(closeWindow, sample).pipe(
        Effect.repeat(Schedule.spaced(windowMs)),
        Effect.delay(windowMs),
        Effect.forkScoped,
      )
      return { sample }
    }),
  )
}
