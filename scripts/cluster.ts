import { createServer, request as httpRequest } from "node:http"
import { type Replica, startCluster, stopCluster } from "./replicas.ts"

/**
 * `npm run cluster -- --replicas 3 [--port 8001] [--front 8000]`: N replicas of the gateway on
 * ports PORT, PORT+1, … sharing REDIS_URL (default redis://127.0.0.1:6379) and DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/test), plus with `--front` a tiny round-robin proxy
 * in front of them. Every other variable (providers, AUTH_MODE, …) passes through. Ctrl-C stops all.
 */
const arg = (name: string) => {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : undefined
}
const count = Number(arg("--replicas") ?? 3)
const basePort = Number(arg("--port") ?? 8001)
const frontPort = arg("--front") === undefined ? undefined : Number(arg("--front"))
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(basePort)) {
  console.error("usage: npm run cluster -- --replicas N [--port FIRST_PORT] [--front PORT]")
  process.exit(2)
}

const env = {
  REDIS_URL: process.env.REDIS_URL || "redis://127.0.0.1:6379",
  DATABASE_URL: process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test",
}

/** Round-robin, request by request; streams pass through as they come. */
const front = (replicas: ReadonlyArray<Replica>, port: number) => {
  let next = 0
  const server = createServer((req, res) => {
    const target = replicas[next++ % replicas.length]!
    const upstream = httpRequest(
      { host: "127.0.0.1", port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, "x-dac-replica": target.id })
        answer.pipe(res)
      },
    )
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" })
      res.end(
        JSON.stringify({
          error: { code: "replica_unreachable", message: `replica ${target.id} did not answer` },
        }),
      )
    })
    req.pipe(upstream)
  })
  return new Promise<typeof server>((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)))
}

const replicas = await startCluster({ replicas: count, basePort, env, keepLines: 50 })
for (const replica of replicas) {
  replica.process.stdout?.on("data", (chunk: Buffer) => process.stdout.write(`[${replica.id}] ${chunk}`))
}
console.log(`${count} replicas on ${env.REDIS_URL.replace(/\/\/[^@]*@/, "//")}:`)
for (const replica of replicas) console.log(`  ${replica.id}  ${replica.url}`)
const proxy = frontPort === undefined ? undefined : await front(replicas, frontPort)
if (frontPort !== undefined) console.log(`  front  http://127.0.0.1:${frontPort} (round-robin)`)
console.log("Ctrl-C stops them.")

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  proxy?.close()
  await stopCluster(replicas)
  process.exit(0)
}
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
