import { Context, Effect, Exit, Layer, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { expect, it } from "vitest"
import { prometheusName } from "../../src/telemetry/metrics.ts"
import { ProcessMetrics } from "../../src/telemetry/process-metrics.ts"

const gauge = (text: string, name: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.split(" ")[1])
}

it("reports CPU, resident memory and an event-loop stall in seconds, under Node's usual names", async () => {
  const scope = Effect.runSync(Scope.make())
  const context = (await Effect.runPromise(
    Layer.buildWithScope(ProcessMetrics.make(1_000), scope),
  )) as Context.Context<never>
  try {
    // Windows close at ~1 s, ~2 s, ~3 s: stall the loop for 150 ms inside the second one, and read
    // between its close and the third's, with half a second of slack on either side.
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    const stalledAt = Date.now()
    while (Date.now() - stalledAt < 150);
    await new Promise((resolve) => setTimeout(resolve, 1_250))
    await Effect.runPromise(Context.get(context as Context.Context<ProcessMetrics>, ProcessMetrics).sample)
    const text = PrometheusMetrics.formatUnsafe(context, { metricNameMapper: prometheusName })
    // The stall, less the monitor's 10 ms tick, in seconds (not ms, not ns).
    expect(gauge(text, "nodejs_eventloop_lag_max_seconds")).toBeGreaterThan(0.1)
    expect(gauge(text, "nodejs_eventloop_lag_max_seconds")).toBeLessThan(1)
    expect(gauge(text, "process_cpu_seconds_total")).toBeGreaterThan(0.1)
    expect(gauge(text, "process_resident_memory_bytes")).toBeGreaterThan(10_000_000)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
})
