/**
 * `npm run bench:replicas`: the gateway end to end, one replica with its own pacer against one and
 * three replicas sharing the pacer (and, since the relay, their generations) through Redis.
 * `BENCH_REPLICAS_ROUTE=threads`: thread turns instead (`POST /api/threads/{id}/messages`, a thread
 * per caller, each turn to the next replica round-robin: with three replicas every turn finds its
 * thread moved on elsewhere, the relay's worst case: the thread lock and a reload from the store). Replica processes (scripts/replicas.ts) on a fresh
 * database of the local PostgreSQL (dropped after) and Redis at 127.0.0.1:6379 (a fresh key
 * prefix), the mock provider (no upstream time), `/v1/chat/completions` from 32 callers spread
 * round-robin; req/s, and the replicas' CPU per request (their `process_cpu_seconds_total`).
 * The callers run in this process, on the same machine: compare rows, not absolute figures.
 */
import { execFileSync } from "node:child_process"
import { type Replica, startCluster, stopCluster } from "../scripts/replicas.ts"

const seconds = Number(process.env.BENCH_REPLICAS_SECONDS ?? 5)
const threads = process.env.BENCH_REPLICAS_ROUTE === "threads"
const callers = 32
const database = `dac_bench_replicas_${Date.now()}`
const psql = (sql: string) =>
  execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], {
    stdio: "ignore",
  })

const cpuSeconds = async (replicas: ReadonlyArray<Replica>) => {
  let total = 0
  for (const replica of replicas) {
    const text = await (await fetch(`${replica.url}/metrics`)).text()
    const line = /^process_cpu_seconds_total(?:\{[^}]*\})? (\S+)$/m.exec(text)
    total += Number(line?.[1] ?? Number.NaN)
  }
  return total
}

const drive = async (replicas: ReadonlyArray<Replica>, ms: number) => {
  const end = performance.now() + ms
  let n = 0
  let ok = 0
  let failed = 0
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      const headers = { "content-type": "application/json", "x-org-id": `org-${caller % 4}` }
      const thread = threads
        ? ((await (
            await fetch(`${replicas[caller % replicas.length]!.url}/api/threads`, {
              method: "POST",
              headers,
              body: "{}",
            })
          ).json()) as { thread_id: string })
        : undefined
      while (performance.now() < end) {
        const replica = replicas[n % replicas.length]!
        const content = `b ${n++}`
        const response =
          thread === undefined
            ? await fetch(`${replica.url}/v1/chat/completions`, {
                method: "POST",
                headers,
                body: JSON.stringify({
                  model: "mock/faststream-ttft",
                  messages: [{ role: "user", content }],
                }),
              })
            : await fetch(`${replica.url}/api/threads/${thread.thread_id}/messages`, {
                method: "POST",
                headers,
                body: JSON.stringify({ role: "user", content, provider: "mock", model: "faststream-ttft" }),
              })
        await response.arrayBuffer()
        if (response.status === 200) ok++
        else failed++
      }
    }),
  )
  return { ok, failed }
}

const run = async (name: string, count: number, env: Record<string, string>) => {
  const replicas = await startCluster({
    replicas: count,
    env: {
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${database}`,
      AUTH_MODE: "header",
      LOG_LEVEL: "Error",
      MOCK_TTFT_MS: "0",
      MOCK_TOKENS: "4",
      MOCK_TOKEN_INTERVAL_MS: "0",
      ...env,
    },
  })
  try {
    await drive(replicas, 1_000)
    const cpu = await cpuSeconds(replicas)
    const t = performance.now()
    const { ok, failed } = await drive(replicas, seconds * 1_000)
    const elapsed = (performance.now() - t) / 1000
    const used = (await cpuSeconds(replicas)) - cpu
    return { name, rps: ok / elapsed, cpuUs: (used * 1e6) / ok, failed }
  } finally {
    await stopCluster(replicas)
  }
}

psql(`CREATE DATABASE ${database}`)
try {
  const prefix = `dac-bench-replicas-${Date.now()}:`
  const rows = [
    await run("1 replica, local pacer", 1, {}),
    await run("1 replica, shared pacer", 1, {
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_KEY_PREFIX: `${prefix}1:`,
    }),
    await run("3 replicas, shared pacer", 3, {
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_KEY_PREFIX: `${prefix}3:`,
    }),
  ]
  console.log(
    `Mock provider, ${threads ? "thread turns (a thread per caller, turns round-robin)" : "/v1/chat/completions"}, ${callers} callers, ${seconds} s per row, PostgreSQL, this machine`,
  )
  console.log("contender                   req/s  CPU µs/req (replicas)  errors")
  console.log("------------------------  ------  ---------------------  ------")
  for (const row of rows) {
    console.log(
      `${row.name.padEnd(24)}  ${row.rps.toFixed(0).padStart(6)}  ${row.cpuUs.toFixed(0).padStart(21)}  ${String(row.failed).padStart(6)}`,
    )
  }
} finally {
  psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
}
