import { monitorEventLoopDelay } from "node:perf_hooks"
import { Context, Effect, Layer, Schedule } from "effect"
import { processMetrics, setGauge } from "./metrics.ts"

/** The event-loop gauges cover this window; OTLP exports and scrapes read the last one. */
const defaultWindowMs = 5_000
/** The delay monitor's timer, ms. Each sample is the time between two of its ticks. */
const resolutionMs = 10

/**
 * The process's own CPU, memory and event-loop delay as metrics. CPU and memory are read at every
 * `sample` (each scrape, so they are current); the event-loop delay is a window that a fiber closes
 * every `windowMs` (5 s; a scrape must not reset it, or two scrapers would each see half a window).
 */
export class ProcessMetrics extends Context.Service<
  ProcessMetrics,
  { readonly sample: Effect.Effect<void> }
>()("dac/ProcessMetrics") {
  static readonly make = (windowMs: number) =>
    Layer.effect(
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

        const delay = monitorEventLoopDelay({ resolution: resolutionMs })
        delay.enable()
        yield* Effect.addFinalizer(() => Effect.sync(() => delay.disable()))
        const closeWindow = Effect.sync(() => {
          // A sample is the time between two ticks of the monitor's timer, so an idle loop reads
          // ~10 ms: the delay is what exceeds the timer's interval. An empty histogram reports NaN
          // and huge sentinels: no sample is no delay.
          const late = (ns: number) => (delay.count > 0 ? Math.max(0, ns / 1e6 - resolutionMs) / 1000 : 0)
          setGauge(processMetrics.eventLoopDelayMean, {}, late(delay.mean), context)
          setGauge(processMetrics.eventLoopDelayP99, {}, late(delay.percentile(99)), context)
          setGauge(processMetrics.eventLoopDelayMax, {}, late(delay.max), context)
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

  static readonly layer = ProcessMetrics.make(defaultWindowMs)
}
