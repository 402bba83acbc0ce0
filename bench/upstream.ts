/**
 * The benchmark's provider: OpenAI Chat Completions on loopback with a fixed pace (first token after
 * `--ttft-ms`, then `--tokens` tokens `--token-ms` apart). Answers `stream: true` with SSE chunks and
 * otherwise with one JSON body after the whole generation time. Records when each socket closes, to
 * measure cancel propagation: `GET /stats` returns them.
 *   node bench/upstream.ts --port 0 [--ttft-ms 20 --tokens 20 --token-ms 2]
 */
import { createServer } from "node:http"

const arg = (name: string, fallback: number) => {
  const index = process.argv.indexOf(name)
  return index >= 0 ? Number(process.argv[index + 1]) : fallback
}
const ttftMs = arg("--ttft-ms", 20)
const tokens = arg("--tokens", 20)
const tokenMs = arg("--token-ms", 2)

const closes: Array<{ marker: string | undefined; at: number }> = []
let calls = 0
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const chunk = (content: string | null, finish: string | null) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-bench",
    object: "chat.completion.chunk",
    created: 0,
    model: "bench",
    choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
  })}\n\n`

const server = createServer((request, response) => {
  if (request.method === "GET" && request.url === "/stats") {
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ calls, closes }))
    closes.length = 0
    return
  }
  const parts: Array<Buffer> = []
  request.on("data", (part: Buffer) => parts.push(part))
  request.on("end", async () => {
    calls++
    const body = JSON.parse(Buffer.concat(parts).toString("utf8") || "{}") as {
      stream?: boolean
      messages?: Array<{ content: string }>
    }
    // The benchmark marks each cancel request's content so its abort can be matched; a reply cut
    // before it finished is the upstream seeing the cancel.
    const marker = body.messages?.at(-1)?.content
    response.once("close", () => {
      if (!response.writableFinished) closes.push({ marker, at: performance.timeOrigin + performance.now() })
    })
    if (body.stream) {
      response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
      await sleep(ttftMs)
      for (let i = 0; i < tokens && !response.destroyed; i++) {
        if (i > 0 && tokenMs > 0) await sleep(tokenMs)
        response.write(chunk(i === 0 ? "Hello" : " token", null))
      }
      if (response.destroyed) return
      response.write(chunk(null, "stop"))
      response.write(
        `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 0, model: "bench", choices: [], usage: { prompt_tokens: 5, completion_tokens: tokens, total_tokens: tokens + 5 } })}\n\n`,
      )
      response.end("data: [DONE]\n\n")
      return
    }
    await sleep(ttftMs + tokenMs * (tokens - 1))
    response.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        id: "chatcmpl-bench",
        object: "chat.completion",
        created: 0,
        model: "bench",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: `Hello${" token".repeat(tokens - 1)}` },
            finish_reason: "stop",
          },
        ],
        usage: { prompt_tokens: 5, completion_tokens: tokens, total_tokens: tokens + 5 },
      }),
    )
  })
})
server.keepAliveTimeout = 60_000
server.listen(arg("--port", 0), "127.0.0.1", () => {
  const address = server.address()
  console.log(JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 }))
})
