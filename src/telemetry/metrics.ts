import { type Context, Metric } from "effect"
import type { RequestLogEntry } from "../store/request-log-repo.ts"

/** Millisecond buckets from 1 ms to ~65 s, for TTFT, latency and queue wait alike. */
const msBoundaries = Metric.exponentialBoundaries({ start: 1, factor: 2, count: 17 })

const requests = Metric.counter("dac_requests_total", {
  description: "Requests by provider, coalescing role and outcome",
  incremental: true,
})
// By provider and model, never by org: an org label would grow with every tenant (cardinality).
const tokens = Metric.counter("dac_tokens_total", {
  description: "Tokens the providers reported, by provider, model and direction (input or output)",
  incremental: true,
})
const ttft = Metric.histogram("dac_ttft_ms", {
  description: "Time to the first upstream byte, from the request's arrival (ms)",
  boundaries: msBoundaries,
})
const latency = Metric.histogram("dac_request_duration_ms", {
  description: "Time from a request's arrival to its end (ms)",
  boundaries: msBoundaries,
})
const queueWait = Metric.histogram("dac_queue_wait_ms", {
  description: "Time a request waited in its provider's pacer (ms)",
  boundaries: msBoundaries,
})

export const pacerGauges = {
  tokens: Metric.gauge("dac_pacer_tokens", { description: "Tokens in the provider's bucket" }),
  inFlight: Metric.gauge("dac_pacer_in_flight", { description: "Upstream calls in flight" }),
  queued: Metric.gauge("dac_pacer_queued", { description: "Requests waiting in the pacer" }),
  concurrencyLimit: Metric.gauge("dac_pacer_concurrency_limit", {
    description: "Current (adaptive) concurrency limit",
  }),
  paused: Metric.gauge("dac_pacer_paused", { description: "1 while dispatch to the provider is paused" }),
}

// A tagged metric is a new object: keep one per label set instead of one per request.
const tagged = new Map<Metric.Metric<number, unknown>, Map<string, Metric.Metric<number, unknown>>>()
const withLabels = <M extends Metric.Metric<number, unknown>>(
  metric: M,
  labels: Record<string, string>,
): M => {
  let byLabels = tagged.get(metric)
  if (byLabels === undefined) {
    byLabels = new Map()
    tagged.set(metric, byLabels)
  }
  let key = ""
  for (const name in labels) key += `${labels[name]}|`
  let found = byLabels.get(key)
  if (found === undefined) {
    found = Metric.withAttributes(metric, labels) as Metric.Metric<number, unknown>
    byLabels.set(key, found)
  }
  return found as M
}

/** Feeds one finished request into the metrics (called by the request log, the one place that sees them all). */
export const recordRequestMetrics = (entry: RequestLogEntry, context: Context.Context<never>) => {
  const provider = entry.provider ?? "none"
  withLabels(requests, { provider, coalesce: entry.coalesce, status: entry.status }).updateUnsafe(1, context)
  if (entry.ttft_ms !== null) withLabels(ttft, { provider }).updateUnsafe(entry.ttft_ms, context)
  if (entry.latency_ms !== null) withLabels(latency, { provider }).updateUnsafe(entry.latency_ms, context)
  if (entry.queue_wait_ms !== null)
    withLabels(queueWait, { provider }).updateUnsafe(entry.queue_wait_ms, context)
  // Usage is on the leader's entry only (followers share its call): each upstream call counts once.
  const model = entry.model ?? "none"
  if (entry.input_tokens !== null && entry.input_tokens > 0)
    withLabels(tokens, { provider, model, direction: "input" }).updateUnsafe(entry.input_tokens, context)
  if (entry.output_tokens !== null && entry.output_tokens > 0)
    withLabels(tokens, { provider, model, direction: "output" }).updateUnsafe(entry.output_tokens, context)
}

export const setGauge = (
  gauge: Metric.Gauge<number>,
  labels: Record<string, string>,
  value: number,
  context: Context.Context<never>,
) => withLabels(gauge as Metric.Metric<number, unknown>, labels).updateUnsafe(value, context)
