import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Pacer } from "../engine/pacer.ts"
import {
  clusterGauges,
  pacerGauges,
  prometheusName,
  providerLabel,
  setGauge,
  withReplicaLabel,
} from "../telemetry/metrics.ts"
import { ProcessMetrics } from "../telemetry/process-metrics.ts"
import { clusterReadiness } from "./cluster-ready.ts"

/**
 * `GET /metrics`: Prometheus exposition of the request and process metrics, with the pacers and
 * the process read at scrape time. Metrics keep their OTLP names inside; `prometheusName` gives each
 * its Prometheus one (unit suffix, `_total`), and the formatter turns the dotted attribute names
 * into labels (`gen_ai.provider.name` → `gen_ai_provider_name`).
 */
export const PrometheusRoute = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.gen(function* () {
    const pacer = yield* Pacer
    yield* (yield* ProcessMetrics).sample
    const context = yield* Effect.context<never>()
    const now = Date.now()
    for (const state of pacer.state()) {
      const labels = providerLabel(state.provider)
      setGauge(pacerGauges.tokens, labels, state.tokens, context)
      setGauge(pacerGauges.inFlight, labels, state.inFlight, context)
      setGauge(pacerGauges.queued, labels, state.queued, context)
      setGauge(pacerGauges.concurrencyLimit, labels, state.concurrencyLimit, context)
      setGauge(
        pacerGauges.paused,
        labels,
        state.pausedUntil !== null && state.pausedUntil > now ? 1 : 0,
        context,
      )
    }
    // With REDIS_URL: Redis and the shared budget, and a `replica` label on every sample.
    const cluster = yield* clusterReadiness
    if (cluster !== undefined) {
      setGauge(clusterGauges.redisUp, {}, cluster.redis.state === "up" ? 1 : 0, context)
      setGauge(clusterGauges.fallback, {}, cluster.shared.limits === "fallback" ? 1 : 0, context)
      for (const budget of cluster.shared.pacer) {
        setGauge(clusterGauges.sharedInFlight, providerLabel(budget.provider), budget.inFlight, context)
      }
      const generations = cluster.shared.generations
      if (generations !== undefined) {
        setGauge(clusterGauges.relayPublished, {}, generations.published, context)
        setGauge(clusterGauges.relayMirrored, {}, generations.mirrored, context)
        setGauge(clusterGauges.relayCopies, {}, generations.copies, context)
      }
      setGauge(clusterGauges.threadsHeld, {}, cluster.shared.threadsHeld ?? 0, context)
    }
    const formatted = yield* PrometheusMetrics.format({ metricNameMapper: prometheusName })
    const text = cluster === undefined ? formatted : withReplicaLabel(formatted, cluster.replica)
    return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  }),
)
