/**
 * The floor: a bare Node passthrough proxy (keep-alive agent, bodies piped both ways, no parsing).
 * Whatever a gateway does, it costs at least this.
 *   node bench/proxy.ts --port 0 --target http://127.0.0.1:PORT
 */
import { Agent, createServer, request as forward } from "node:http"

const index = process.argv.indexOf("--target")
const target = new URL(process.argv[index + 1]!)
const agent = new Agent({ keepAlive: true, maxSockets: 1024 })

const server = createServer((request, response) => {
  const upstream = forward(
    {
      host: target.hostname,
      port: target.port,
      method: request.method,
      path: request.url ?? "/",
      headers: { ...request.headers, host: target.host },
      agent,
    },
    (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(response)
    },
  )
  upstream.on("error", () => response.destroy())
  response.on("close", () => upstream.destroy())
  request.pipe(upstream)
})
server.keepAliveTimeout = 60_000
const portIndex = process.argv.indexOf("--port")
server.listen(Number(process.argv[portIndex + 1] ?? 0), "127.0.0.1", () => {
  const address = server.address()
  console.log(JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 }))
})
