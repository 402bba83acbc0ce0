/**
 * The seeds' smoke test: one streamed reply. Checks the SSE headers (text/event-stream,
 * anti-buffering) and that `ping` comes first, and prints the time to the first byte.
 *   npm run smoke -- [--url http://host:port]
 */
import { gatewayFor } from "./harness.ts"

const gateway = await gatewayFor()
const headers = { ...(await gateway.auth("smoke")), "content-type": "application/json" }
const failures: Array<string> = []
try {
  const thread = (await (
    await fetch(`${gateway.baseUrl}/api/threads`, { method: "POST", headers, body: "{}" })
  ).json()) as {
    thread_id: string
  }
  const startedAt = performance.now()
  const response = await fetch(`${gateway.baseUrl}/api/threads/${thread.thread_id}/messages/stream`, {
    method: "POST",
    headers,
    body: JSON.stringify({
      role: "user",
      content: `smoke ${Date.now()}`,
      provider: "mock",
      model: "faststream-ttft",
    }),
  })
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const first = await reader.read()
  const firstByteMs = performance.now() - startedAt
  let text = new TextDecoder().decode(first.value)
  for (;;) {
    const next = await reader.read()
    if (next.done) break
    text += new TextDecoder().decode(next.value)
  }
  const expect = (ok: boolean, what: string) => {
    console.log(`${ok ? "PASS" : "FAIL"} ${what}`)
    if (!ok) failures.push(what)
  }
  expect(response.status === 200, `status 200 (got ${response.status})`)
  expect(
    /^text\/event-stream/.test(response.headers.get("content-type") ?? ""),
    "content-type: text/event-stream",
  )
  expect(
    response.headers.get("cache-control") === "no-cache, no-transform",
    "cache-control: no-cache, no-transform",
  )
  expect(response.headers.get("x-accel-buffering") === "no", "x-accel-buffering: no")
  expect(response.headers.get("content-encoding") === null, "no content-encoding")
  expect(text.startsWith("id: 0\nevent: ping\n"), "the first event is ping")
  expect(/event: done\n/.test(text), "the stream ends with done")
  console.log(`time to first byte ${firstByteMs.toFixed(1)} ms`)
} finally {
  await gateway.close()
}
process.exitCode = failures.length === 0 ? 0 : 1
