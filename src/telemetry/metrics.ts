import { type Context, Metric } from "effect"
import type { RequestLogEntry } from "../store/request-log-repo.ts"

// Names: OpenTelemetry's GenAI semantic conventions where they name the measure, `dac.*` for the
// gateway's own; all in base units (seconds). Each metric carries its OTLP name (dotted) and its
// Prometheus name (underscores, unit suffix, `_total` on counters) — see `prometheusName` below —
// because `promtool check metrics` refuses abbreviated units (`_ms`) and ops tools expect seconds.
// The `unit` attribute is what the OTLP exporter reads for a metric's unit; the Prometheus
// formatter leaves it out of the labels.
const seconds = { unit: "seconds" }

// The conventions' advisory bucket boundaries (seconds, tokens), so dashboards built for them fit.
const ttftBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const durationBoundaries = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]
const tokenBoundaries = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
]
/** 1 ms to ~65 s, doubling: a queue wait is usually 0 or a few ms, and long when a provider pauses. */
const queueWaitBoundaries = Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 17 })

/** OTLP name → Prometheus name, for every metric DAC defines (the formatter's name mapper). */
const prometheusNames = new Map<string, string>()
const named = <M>(otlp: string, prometheus: string, metric: M): M => {
  prometheusNames.set(otlp, prometheus)
  return metric
}
/** The Prometheus name of a metric; a name DAC did not define passes through (the formatter sanitizes it). */
export const prometheusName = (otlpName: string) => prometheusNames.get(otlpName) ?? otlpName

const requests = named(
  "dac.requests",
  "dac_requests_total",
  Metric.counter("dac.requests", {
    description: "Requests by provider, coalescing role and outcome",
    attributes: { unit: "{request}" },
    incremental: true,
  }),
)
// Usage as the conventions define it: a histogram of tokens per upstream call, by token type. Its
// `_sum` is the total the old `dac_tokens_total` counter gave (rate() works on it), and `_count`
// the calls. By provider and model, never by org: an org label would grow with every tenant.
const tokenUsage = named(
  "gen_ai.client.token.usage",
  "gen_ai_client_token_usage",
  Metric.histogram("gen_ai.client.token.usage", {
    description: "Tokens per upstream call as the provider reported them, by token type (input or output)",
    attributes: { unit: "{token}", "gen_ai.operation.name": "chat" },
    boundaries: tokenBoundaries,
  }),
)
const ttft = named(
  "gen_ai.server.time_to_first_token",
  "gen_ai_server_time_to_first_token_seconds",
  Metric.histogram("gen_ai.server.time_to_first_token", {
    description: "Time from a request's arrival to the first upstream byte (s)",
    attributes: { ...seconds, "gen_ai.operation.name": "chat" },
    boundaries: ttftBoundaries,
  }),
)
const duration = named(
  "gen_ai.server.request.duration",
  "gen_ai_server_request_duration_seconds",
  Metric.histogram("gen_ai.server.request.duration", {
    description: "Time from a request's arrival to its end (s)",
    attributes: { ...seconds, "gen_ai.operation.name": "chat" },
    boundaries: durationBoundaries,
  }),
)
const queueWait = named(
  "dac.pacer.queue_wait",
  "dac_queue_wait_seconds",
  Metric.histogram("dac.pacer.queue_wait", {
    description: "Time a request waited in its provider's pacer (s)",
    attributes: seconds,
    boundaries: queueWaitBoundaries,
  }),
)

const gauge = (otlp: string, prometheus: string, description: string, unit: string) =>
  named(otlp, prometheus, Metric.gauge(otlp, { description, attributes: { unit } }))

export const pacerGauges = {
  tokens: gauge("dac.pacer.tokens", "dac_pacer_tokens", "Tokens in the provider's bucket", "{token}"),
  inFlight: gauge("dac.pacer.in_flight", "dac_pacer_in_flight", "Upstream calls in flight", "{request}"),
  queued: gauge("dac.pacer.queued", "dac_pacer_queued", "Requests waiting in the pacer", "{request}"),
  concurrencyLimit: gauge(
    "dac.pacer.concurrency_limit",
    "dac_pacer_concurrency_limit",
    "Current (adaptive) concurrency limit",
    "{request}",
  ),
  paused: gauge("dac.pacer.paused", "dac_pacer_paused", "1 while dispatch to the provider is paused", "1"),
}

/** With REDIS_URL: whether this replica reaches Redis and whether its limits are shared or its share. */
export const clusterGauges = {
  redisUp: gauge("dac.redis.up", "dac_redis_up", "1 while this replica reaches Redis (REDIS_URL)", "1"),
  fallback: gauge(
    "dac.limits.fallback",
    "dac_limits_fallback",
    "1 while Redis is unreachable and this replica keeps 1/REPLICA_COUNT of every limit",
    "1",
  ),
  sharedInFlight: gauge(
    "dac.pacer.shared_in_flight",
    "dac_pacer_shared_in_flight",
    "Upstream calls in flight on every replica, as this replica last read the shared budget",
    "{request}",
  ),
  relayPublished: gauge(
    "dac.relay.published",
    "dac_relay_published",
    "Generations this replica runs that other replicas can follow (running, or ended within their retention)",
    "{generation}",
  ),
  relayMirrored: gauge(
    "dac.relay.mirrored",
    "dac_relay_mirrored",
    "Of those, the ones another replica follows (their frames go to Redis)",
    "{generation}",
  ),
  relayCopies: gauge(
    "dac.relay.copies",
    "dac_relay_copies",
    "Copies on this replica of generations other replicas run",
    "{generation}",
  ),
  threadsHeld: gauge(
    "dac.threads.held",
    "dac_threads_held",
    "Threads a turn of this replica holds (one turn at a time per thread on every replica)",
    "{thread}",
  ),
}

/** Every sample of a Prometheus exposition gets `replica="<id>"` (the comment lines stay as they are). */
export const withReplicaLabel = (text: string, replica: string): string => {
  const value = replica.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
  return text
    .split("\n")
    .map((line) => {
      if (line === "" || line.startsWith("#")) return line
      const brace = line.indexOf("{")
      const space = line.indexOf(" ")
      if (brace >= 0 && (space < 0 || brace < space)) {
        return `${line.slice(0, brace + 1)}replica="${value}"${line[brace + 1] === "}" ? "" : ","}${line.slice(brace + 1)}`
      }
      return space < 0 ? line : `${line.slice(0, space)}{replica="${value}"}${line.slice(space)}`
    })
    .join("\n")
}

/** The process's own health: OTel's process/Node.js names over OTLP, the usual Node exporter's in Prometheus. */
export const processMetrics = {
  cpu: named(
    "process.cpu.time",
    "process_cpu_seconds_total",
    Metric.counter("process.cpu.time", {
      description: "CPU time the process used, user and system (s)",
      attributes: seconds,
      incremental: true,
    }),
  ),
  residentMemory: gauge(
    "process.memory.usage",
    "process_resident_memory_bytes",
    "Resident memory of the process (bytes)",
    "bytes",
  ),
  heapUsed: gauge("v8js.memory.heap.used", "nodejs_heap_size_used_bytes", "V8 heap in use (bytes)", "bytes"),
  eventLoopDelayMean: gauge(
    "nodejs.eventloop.delay.mean",
    "nodejs_eventloop_lag_seconds",
    "Mean event-loop delay over the last sampling window (s)",
    "seconds",
  ),
  eventLoopDelayP99: gauge(
    "nodejs.eventloop.delay.p99",
    "nodejs_eventloop_lag_p99_seconds",
    "99th percentile of the event-loop delay over the last sampling window (s)",
    "seconds",
  ),
  eventLoopDelayMax: gauge(
    "nodejs.eventloop.delay.max",
    "nodejs_eventloop_lag_max_seconds",
    "Largest event-loop delay over the last sampling window (s)",
    "seconds",
  ),
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

/** The conventions' attribute for the provider (`gen_ai_provider_name` in Prometheus). */
export const providerLabel = (provider: string) => ({ "gen_ai.provider.name": provider })

/** Feeds one finished request into the metrics (called by the request log, the one place that sees them all). */
export const recordRequestMetrics = (entry: RequestLogEntry, context: Context.Context<never>) => {
  const provider = providerLabel(entry.provider ?? "none")
  withLabels(requests, { ...provider, coalesce: entry.coalesce, status: entry.status }).updateUnsafe(
    1,
    context,
  )
  // The histograms are by provider only: a failed request's model is whatever the caller sent, and
  // a label per made-up model name would grow without bound.
  if (entry.ttft_ms !== null) withLabels(ttft, provider).updateUnsafe(entry.ttft_ms / 1000, context)
  if (entry.latency_ms !== null) withLabels(duration, provider).updateUnsafe(entry.latency_ms / 1000, context)
  if (entry.queue_wait_ms !== null)
    withLabels(queueWait, provider).updateUnsafe(entry.queue_wait_ms / 1000, context)
  // Usage is on the leader's entry only (followers share its call): each upstream call counts once,
  // and only a call that ran, so its model is one the provider accepted.
  const usage = { ...provider, "gen_ai.request.model": entry.model ?? "none" }
  if (entry.input_tokens !== null && entry.input_tokens > 0)
    withLabels(tokenUsage, { ...usage, "gen_ai.token.type": "input" }).updateUnsafe(
      entry.input_tokens,
      context,
    )
  if (entry.output_tokens !== null && entry.output_tokens > 0)
    withLabels(tokenUsage, { ...usage, "gen_ai.token.type": "output" }).updateUnsafe(
      entry.output_tokens,
      context,
    )
}

export const setGauge = (
  gauge: Metric.Gauge<number>,
  labels: Record<string, string>,
  value: number,
  context: Context.Context<never>,
) => withLabels(gauge as Metric.Metric<number, unknown>, labels).updateUnsafe(value, context)
