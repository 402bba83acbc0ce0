import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Pacer } from "../engine/pacer.ts"
import { pacerGauges, prometheusName, providerLabel, setGauge } from "../telemetry/metrics.ts"
import { ProcessMetrics } from "../telemetry/process-metrics.ts"

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
    const text = yield* PrometheusMetrics.format({ metricNameMapper: prometheusName })
    return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  }),
)
