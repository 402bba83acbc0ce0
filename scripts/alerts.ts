/**
 * The seeds' alert check: reads GET /api/metrics/performance and exits non-zero naming each
 * breached threshold. Against its own gateway it first makes a burst of identical requests and some
 * streams on the mock provider, so there is something to judge.
 *   npm run alerts -- [--url http://host:port --org ORG] [--last-n 100] [--polls 3 --interval-ms 1000] [--burst]
 */

import { alertThresholds } from "../src/telemetry/timeseries.ts"
import { argValue, gatewayFor, table } from "./harness.ts"

/** The seeds' thresholds: the same the dashboard draws. */
const t = alertThresholds

const selfHosted = argValue("--url") === undefined && process.env.BASE_URL === undefined
const gateway = await gatewayFor()
const org = argValue("--org") ?? `alerts-${Date.now()}`
const lastN = Number(argValue("--last-n") ?? "100")
const polls = Number(argValue("--polls") ?? "3")
const intervalMs = Number(argValue("--interval-ms") ?? "1000")
const underBurst = selfHosted || process.argv.includes("--burst")
const headers = { ...(await gateway.auth(org)), "content-type": "application/json" }

interface Summary {
  count: number
  ttft_ms: { p95: number | null }
  latency_ms: { p95: number | null }
  queue_wait_ms: { p95: number | null }
  coalesce: { leaders: number; followers: number; cache_hits: number }
  error_rate: number
}

/** Threshold name → the worst value seen that breached it. */
const breached = new Map<string, string>()
try {
  if (selfHosted) {
    const thread = (await (
      await fetch(`${gateway.baseUrl}/api/threads`, { method: "POST", headers, body: "{}" })
    ).json()) as {
      thread_id: string
    }
    const send = (content: string) =>
      fetch(`${gateway.baseUrl}/api/threads/${thread.thread_id}/messages`, {
        method: "POST",
        headers,
        body: JSON.stringify({ role: "user", content, provider: "mock", model: "faststream-ttft" }),
      }).then((r) => r.text())
    for (let round = 0; round < 3; round++)
      await Promise.all(Array.from({ length: 30 }, () => send(`burst ${round}`)))
  }
  const rows = []
  for (let poll = 0; poll < polls; poll++) {
    const response = await fetch(`${gateway.baseUrl}/api/metrics/performance?last_n=${lastN}`, { headers })
    if (response.status !== 200)
      throw new Error(`performance endpoint answered ${response.status}: ${await response.text()}`)
    const s = (await response.json()) as Summary
    const ratio =
      s.coalesce.leaders === 0
        ? Number.POSITIVE_INFINITY
        : (s.coalesce.followers + s.coalesce.cache_hits) / s.coalesce.leaders
    const checks: Array<[name: string, seen: string, hit: boolean]> = [
      [`error_rate > ${t.error_rate}`, s.error_rate.toFixed(3), s.error_rate > t.error_rate],
      [`ttft p95 > ${t.ttft_p95_ms} ms`, String(s.ttft_ms.p95), (s.ttft_ms.p95 ?? 0) > t.ttft_p95_ms],
      [
        `latency p95 > ${t.latency_p95_ms} ms`,
        String(s.latency_ms.p95),
        (s.latency_ms.p95 ?? 0) > t.latency_p95_ms,
      ],
      [
        `queue wait p95 > ${t.queue_wait_p95_ms} ms`,
        String(s.queue_wait_ms.p95),
        (s.queue_wait_ms.p95 ?? 0) > t.queue_wait_p95_ms,
      ],
      [
        `followers/leaders < ${t.followers_per_leader_min} under burst`,
        ratio.toFixed(1),
        underBurst && s.count > 0 && ratio < t.followers_per_leader_min,
      ],
    ]
    for (const [name, seen, hit] of checks) if (hit) breached.set(name, seen)
    rows.push({
      poll: poll + 1,
      count: s.count,
      "error rate": s.error_rate,
      "ttft p95": s.ttft_ms.p95 ?? Number.NaN,
      "latency p95": s.latency_ms.p95 ?? Number.NaN,
      "queue p95": s.queue_wait_ms.p95 ?? Number.NaN,
      "followers/leaders": ratio,
    })
    if (poll + 1 < polls) await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  console.log(table(rows))
} finally {
  await gateway.close()
}
for (const [name, seen] of breached) console.log(`BREACHED ${name} (saw ${seen})`)
if (breached.size === 0)
  console.log(
    `OK no threshold breached (error_rate ≤ ${t.error_rate}, ttft p95 ≤ ${t.ttft_p95_ms}, latency p95 ≤ ${t.latency_p95_ms}, queue wait p95 ≤ ${t.queue_wait_p95_ms}, followers/leaders ≥ ${t.followers_per_leader_min} under burst)`,
  )
process.exitCode = breached.size === 0 ? 0 : 1
