/**
 * The seeds' cancel_quick: N streamed requests against a slow upstream (the fake provider server,
 * OpenAI wire format), each cancelled once text flows. Prints p50/p95/p99 of cancel → upstream
 * socket closed and cancel → the client's terminal event; exits non-zero when p99 ≥ 300 ms.
 *   npm run cancel-check -- [--n 50]
 */
import { startFakeUpstream } from "../test/support/fake-upstream.ts"
import { argValue, gatewayFor, percentile, table } from "./harness.ts"
import { streamTurn } from "./sse.ts"

const n = Number(argValue("--n") ?? "50")
const upstream = await startFakeUpstream()
// Slow: the transcript in 40-byte writes 40 ms apart, so every cancel lands mid-stream.
upstream.on("openai", { transcript: "openai-chat-stream", split: "random", maxWrite: 40, writeDelayMs: 40 })
const gateway = await gatewayFor(upstream.env())
const org = "cancel-check"
const auth = await gateway.auth(org)
const headers = { ...auth, "content-type": "application/json" }

const toSocketClose: Array<number> = []
const toTerminal: Array<number> = []
let failures = 0
try {
  const thread = (await (
    await fetch(`${gateway.baseUrl}/api/threads`, { method: "POST", headers, body: "{}" })
  ).json()) as {
    thread_id: string
  }
  for (let i = 0; i < n; i++) {
    const before = upstream.calls("openai").length
    const stream = await streamTurn(
      `${gateway.baseUrl}/api/threads/${thread.thread_id}/messages/stream`,
      { ...headers, "x-dac-coalesce": "off" },
      { role: "user", content: `cancel me ${i}`, provider: "openai", model: "gpt-4o-mini" },
    )
    const meta = await stream.waitFor((e) => typeof e.data.request_id === "string")
    await stream.waitFor((e) => e.event === "delta")
    const call = upstream.calls("openai")[before]!
    const cancelAt = performance.now()
    await fetch(`${gateway.baseUrl}/api/threads/cancel/${meta.data.request_id}`, {
      method: "POST",
      headers: auth,
    })
    const closedAt = await upstream.socketClosedAt(call, 5_000)
    const terminal = await stream.waitFor(
      (e) => e.event === "cancelled" || e.event === "done" || e.event === "error",
    )
    await stream.done
    if (terminal.event !== "cancelled") failures++
    toSocketClose.push(closedAt - cancelAt)
    toTerminal.push(terminal.at - cancelAt)
    if ((i + 1) % 10 === 0) console.error(`${i + 1}/${n} cancels`)
  }
} finally {
  await gateway.close()
  await upstream.close()
}

const row = (name: string, values: ReadonlyArray<number>) => ({
  measure: name,
  n: values.length,
  "p50 ms": percentile(values, 50),
  "p95 ms": percentile(values, 95),
  "p99 ms": percentile(values, 99),
  "max ms": Math.max(...values),
})
console.log(
  table([
    row("cancel → upstream socket closed", toSocketClose),
    row("cancel → client's terminal event", toTerminal),
  ]),
)
const p99 = Math.max(percentile(toSocketClose, 99), percentile(toTerminal, 99))
console.log(`${p99 < 300 ? "PASS" : "FAIL"} cancel p99 ${p99.toFixed(1)} ms (target < 300 ms; aim < 25 ms)`)
if (failures > 0) console.log(`FAIL ${failures} streams did not end with a cancelled event`)
process.exitCode = p99 < 300 && failures === 0 ? 0 : 1
