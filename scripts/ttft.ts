/**
 * The seeds' TTFT suite: N streamed requests, then a few cancels. Prints the three pass lines
 * (TTFT p95 ≤ 1,500 ms, cancel latency < 300 ms, queue wait p95 ≈ 0) and exits non-zero when one
 * fails. CI runs it against the mock provider.
 *   npm run ttft -- [--n 50] [--concurrency 10] [--url http://host:port] [--provider mock --model faststream-ttft]
 */
import { argValue, gatewayFor, percentile, table } from "./harness.ts"
import { streamTurn } from "./sse.ts"

const n = Number(argValue("--n") ?? "50")
const concurrency = Number(argValue("--concurrency") ?? "10")
const provider = argValue("--provider") ?? "mock"
const model = argValue("--model") ?? "faststream-ttft"
const gateway = await gatewayFor()
const auth = await gateway.auth(`ttft-${Date.now()}`)
const headers = { ...auth, "content-type": "application/json" }

const ttft: Array<number> = []
const clientTtft: Array<number> = []
const queueWait: Array<number> = []
const cancels: Array<number> = []
let errors = 0
try {
  // A thread per stream: turns on one thread run one at a time (each would wait for the one before).
  const newStreamUrl = async () => {
    const thread = (await (
      await fetch(`${gateway.baseUrl}/api/threads`, { method: "POST", headers, body: "{}" })
    ).json()) as { thread_id: string }
    return `${gateway.baseUrl}/api/threads/${thread.thread_id}/messages/stream`
  }
  const url = await newStreamUrl()
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      const stream = await streamTurn(await newStreamUrl(), headers, {
        role: "user",
        content: `ttft ${i} ${Date.now()}`,
        provider,
        model,
      })
      const first = await stream.waitFor((e) => e.event === "meta" && typeof e.data.ttft_ms === "number")
      ttft.push(first.data.ttft_ms as number)
      const delta = await stream.waitFor(
        (e) => e.event === "delta" || e.event === "error" || e.event === "done",
      )
      clientTtft.push(delta.at - stream.startedAt)
      await stream.done
      const end = stream.events.at(-1)
      if (end?.event === "done") queueWait.push((end.data as { queue_wait_ms?: number }).queue_wait_ms ?? 0)
      if (end?.event !== "done") errors++
      if ((i + 1) % 10 === 0) console.error(`${i + 1}/${n} streams`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))

  for (let i = 0; i < 10; i++) {
    const stream = await streamTurn(url, headers, {
      role: "user",
      content: `cancel ${i} ${Date.now()}`,
      provider,
      model: "never-ending",
    })
    const meta = await stream.waitFor((e) => e.event === "meta" && typeof e.data.request_id === "string")
    await stream.waitFor((e) => e.event === "delta")
    const cancelAt = performance.now()
    await fetch(`${gateway.baseUrl}/api/threads/cancel/${meta.data.request_id}`, {
      method: "POST",
      headers: auth,
    })
    const end = await stream.waitFor(
      (e) => e.event === "cancelled" || e.event === "done" || e.event === "error",
    )
    cancels.push(end.at - cancelAt)
    await stream.done
  }
} finally {
  await gateway.close()
}

const row = (measure: string, values: ReadonlyArray<number>) => ({
  measure,
  n: values.length,
  "p50 ms": percentile(values, 50),
  "p95 ms": percentile(values, 95),
  "p99 ms": percentile(values, 99),
})
console.log(
  table([
    row("TTFT (first upstream byte)", ttft),
    row("client time to first delta", clientTtft),
    row("queue wait", queueWait),
    row("cancel → terminal event", cancels),
  ]),
)
const checks = [
  { name: "TTFT p95", value: percentile(ttft, 95), limit: 1500, op: "≤" },
  { name: "cancel latency p95", value: percentile(cancels, 95), limit: 300, op: "<" },
  { name: "queue wait p95", value: percentile(queueWait, 95), limit: 50, op: "≈ 0, ≤" },
]
let failed = errors > 0
for (const check of checks) {
  const pass = check.op === "<" ? check.value < check.limit : check.value <= check.limit
  if (!pass) failed = true
  console.log(
    `${pass ? "PASS" : "FAIL"} ${check.name} ${check.value.toFixed(1)} ms (${check.op} ${check.limit} ms)`,
  )
}
if (errors > 0) console.log(`FAIL ${errors} streams did not end with done`)
process.exitCode = failed ? 1 : 0
