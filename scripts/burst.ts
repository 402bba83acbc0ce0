/**
 * The seeds' burst: N identical concurrent requests on one thread. Prints successes, upstream calls,
 * messages persisted, leaders/followers, p95 latency and p95 queue wait for each N.
 *   npm run burst -- [--sizes 50,1000,10000] [--url http://host:port]
 */
import { Agent, setGlobalDispatcher } from "undici"
import { argValue, gatewayFor, percentile, table } from "./harness.ts"

// One connection per request, as N separate clients would open; patient connects, since one
// process opens all of them on a 2-core machine.
setGlobalDispatcher(
  new Agent({
    connections: null,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connectTimeout: 120_000,
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
  }),
)

const sizes = (argValue("--sizes") ?? "50,1000,10000").split(",").map(Number)
// A result TTL longer than the time a burst of 10,000 takes to arrive here, so late arrivals are
// cache hits of the same turn rather than new leaders.
const gateway = await gatewayFor({
  MOCK_TTFT_MS: "200",
  MOCK_TOKENS: "24",
  MOCK_TOKEN_INTERVAL_MS: "5",
  COALESCE_RESULT_TTL_MS: "120000",
})
const org = `burst-${Date.now()}`
const headers = { ...(await gateway.auth(org)), "content-type": "application/json" }
const rows = []
try {
  for (const n of sizes) {
    // biome-ignore lint/suspicious/noExplicitAny: the gateway's own JSON, read field by field below
    type Json = any
    const thread: Json = await (
      await fetch(`${gateway.baseUrl}/api/threads`, { method: "POST", headers, body: "{}" })
    ).json()
    const body = JSON.stringify({
      role: "user",
      content: `burst of ${n}`,
      provider: "mock",
      model: "faststream-ttft",
    })
    const started = performance.now()
    const results = await Promise.all(
      Array.from({ length: n }, async () => {
        const t0 = performance.now()
        try {
          const response = await fetch(`${gateway.baseUrl}/api/threads/${thread.thread_id}/messages`, {
            method: "POST",
            headers,
            body,
          })
          const text = await response.text()
          const json: Json =
            text === "" ? { error: `HTTP ${response.status} with an empty body` } : JSON.parse(text)
          return { ok: response.status === 200, ms: performance.now() - t0, json }
        } catch (error) {
          return {
            ok: false,
            ms: performance.now() - t0,
            json: { error: `${error} ${(error as { cause?: { code?: string } }).cause?.code ?? ""}` } as Json,
          }
        }
      }),
    )
    const wall = performance.now() - started
    const ok = results.filter((r) => r.ok)
    const stored: Json = await (
      await fetch(`${gateway.baseUrl}/api/threads/${thread.thread_id}`, { headers })
    ).json()
    const roles = (role: string) => ok.filter((r) => r.json.coalesce === role).length
    rows.push({
      concurrent: n,
      ok: ok.length,
      errors: n - ok.length,
      "upstream calls": new Set(ok.map((r) => r.json.assistant_message.message_id)).size,
      "messages stored": stored.messages.length,
      leaders: roles("leader"),
      followers: roles("follower") + roles("cache_hit"),
      "p95 latency ms": percentile(
        results.map((r) => r.ms),
        95,
      ),
      "p95 queue wait ms": percentile(
        ok.map((r) => r.json.metrics.queue_wait_ms),
        95,
      ),
      "wall ms": wall,
    })
    const errorKinds = new Map<string, number>()
    for (const r of results) {
      if (r.ok) continue
      const kind = String(r.json?.error?.code ?? r.json?.error ?? "unknown").slice(0, 80)
      errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1)
    }
    console.error(
      `burst of ${n} done in ${wall.toFixed(0)} ms`,
      errorKinds.size > 0 ? Object.fromEntries(errorKinds) : "",
    )
  }
  console.log(table(rows))
} finally {
  await gateway.close()
}
