import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Pacer } from "../engine/pacer.ts"
import { RequestLog } from "../telemetry/request-log.ts"
import { alertThresholds, timeSeries } from "../telemetry/timeseries.ts"

const clampInt = (value: string | null, fallback: number, min: number, max: number) => {
  const n = value === null ? Number.NaN : Number(value)
  return Number.isInteger(n) ? Math.min(max, Math.max(min, n)) : fallback
}

/**
 * `GET /ops/series?minutes=5&step_s=5`: the dashboard's feed, every org's requests of the last
 * minutes in time buckets (per provider too), the alert thresholds and each provider's pacer now.
 * Behind `OPS_TOKEN` when one is set (ops-guard.ts), like `/metrics`.
 */
export const OpsSeriesRoute = HttpRouter.add(
  "GET",
  "/ops/series",
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const log = yield* RequestLog
    const pacer = yield* Pacer
    const query = new URL(request.url, "http://dac").searchParams
    const minutes = clampInt(query.get("minutes"), 5, 1, 60)
    const stepMs = clampInt(query.get("step_s"), 5, 1, 300) * 1_000
    const now = Date.now()
    const windowMs = minutes * 60_000
    const series = timeSeries(log.since(now - windowMs - stepMs), now, windowMs, stepMs)
    return HttpServerResponse.jsonUnsafe(
      {
        now,
        minutes,
        ...series,
        thresholds: alertThresholds,
        pacer: pacer.state().map((s) => ({
          provider: s.provider,
          tokens: s.tokens,
          in_flight: s.inFlight,
          queued: s.queued,
          concurrency_limit: s.concurrencyLimit,
          paused_until:
            s.pausedUntil !== null && s.pausedUntil > now ? new Date(s.pausedUntil).toISOString() : null,
        })),
      },
      { headers: { "cache-control": "no-store" } },
    )
  }),
)
