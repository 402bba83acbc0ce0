import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Pacer } from "../engine/pacer.ts"
import { pacerGauges, setGauge } from "../telemetry/metrics.ts"

/** `GET /metrics`: Prometheus exposition of the request metrics, with the pacers read at scrape time. */
export const PrometheusRoute = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.gen(function* () {
    const pacer = yield* Pacer
    const context = yield* Effect.context<never>()
    const now = Date.now()
    for (const state of pacer.state()) {
      const labels = { provider: state.provider }
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
    const text = yield* PrometheusMetrics.format()
    return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  }),
)
