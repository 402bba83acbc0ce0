/**
 * The seeds' cancel_quick: N streamed requests against a slow upstream (the fake provider server,
 * OpenAI wire format), each cancelled once text flows. Prints p50/p95/p99 of cancel → upstream
 * socket closed and cancel → the client's terminal event; exits non-zero when p99 ≥ 300 ms.
 *   npm run cancel-check -- [--n 50]
 */
import { createParser } from "eventsource-parser"
import { startFakeUpstream } from "../test/support/fake-upstream.ts"
import { argValue, gatewayFor, percentile, table } from "./harness.ts"

const n = Number(argValue("--n") ?? "50")
const upstream = await startFakeUpstream()
// Slow: the transcript in 40-byte writes 40 ms apart, so every cancel lands mid-stream.
upstream.on("openai", { transcript: "openai-chat-stream", split: "random", maxWrite: 40, writeDelayMs: 40 })
const gateway = await gatewayFor(upstream.env())
const org = "cancel-check"
const headers = { "x-org-id": org, "content-type": "application/json" }

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
    const response = await fetch(`${gateway.baseUrl}/api/threads/${thread.thread_id}/messages/stream`, {
      method: "POST",
      headers: { ...headers, "x-dac-coalesce": "off" },
      body: JSON.stringify({
        role: "user",
        content: `cancel me ${i}`,
        provider: "openai",
        model: "gpt-4o-mini",
      }),
    })
    let requestId: string | undefined
    let sawDelta!: () => void
    const delta = new Promise<void>((resolve) => {
      sawDelta = resolve
    })
    let terminalAt = 0
    let terminal = ""
    const parser = createParser({
      onEvent: (event) => {
        const data = JSON.parse(event.data)
        if (data.request_id) requestId = data.request_id
        if (event.event === "delta") sawDelta()
        if (event.event === "cancelled" || event.event === "done" || event.event === "error") {
          terminalAt = performance.now()
          terminal = event.event ?? ""
        }
      },
    })
    const reading = (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }))
      }
    })()
    await delta
    const call = upstream.calls("openai")[before]!
    const cancelAt = performance.now()
    await fetch(`${gateway.baseUrl}/api/threads/cancel/${requestId}`, {
      method: "POST",
      headers: { "x-org-id": org },
    })
    const closedAt = await upstream.socketClosedAt(call, 5_000)
    await reading
    if (terminal !== "cancelled") failures++
    toSocketClose.push(closedAt - cancelAt)
    toTerminal.push(terminalAt - cancelAt)
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
