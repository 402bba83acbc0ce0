/**
 * DAC against the floor and a peer, in one run on this machine, everything on loopback:
 * direct to a fake OpenAI upstream (fixed pace), a bare Node proxy, DAC, and Portkey's gateway
 * (when installed with `npm run bench:portkey`). Contenders alternate (A B A B) so drift hits all.
 * Prints a table and writes bench/results/<date>.json and .md.
 * Throughput is measured twice: with non-streaming clients (each contender passes the flag on, so
 * the upstream is asked for one JSON body; "DAC stream-up" is DAC with UPSTREAM_STREAM=always, which
 * streams from upstream even then, as DAC's thread turns do), and with streaming clients (every
 * contender streams from upstream).
 * `--ttft-ms 0 --token-ms 0` takes the upstream's pace out: what is left is each contender's own
 * cost (cancel propagation is then not measured: there is nothing to cancel).
 *   npm run bench -- [--seconds 3] [--concurrency 1,10,100,500] [--rounds 2] [--ttft-ms 20] [--token-ms 2]
 *     [--name results-file-stem]
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Pool } from "undici"
import { freePort } from "../scripts/free-port.ts"
import { argValue, percentile, table } from "../scripts/harness.ts"

const seconds = Number(argValue("--seconds") ?? "3")
const concurrencies = (argValue("--concurrency") ?? "1,10,100,500").split(",").map(Number)
const rounds = Number(argValue("--rounds") ?? "2")
const ttftMs = Number(argValue("--ttft-ms") ?? "20")
const tokenMs = Number(argValue("--token-ms") ?? "2")
const paced = ttftMs > 0 || tokenMs > 0
const children: Array<ChildProcess> = []
const node = process.execPath

/** Starts a process that prints `{"port":N}` on its first line. */
const startPrinting = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly port: number; readonly pid: number }>((resolve, reject) => {
    const child = spawn(node, args, { stdio: ["ignore", "pipe", "inherit"] })
    children.push(child)
    child.stdout!.once("data", (data: Buffer) =>
      resolve({ port: JSON.parse(data.toString().split("\n")[0]!).port, pid: child.pid! }),
    )
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)))
  })

const waitHealthy = async (url: string) => {
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(url).then(
      (r) => r.status < 500,
      () => false,
    )
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${url} did not come up`)
}

interface Contender {
  readonly name: string
  readonly origin: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly model: string
  /** The gateway's process, whose CPU time each request costs (none for direct). */
  readonly pid?: number | undefined
  /** Where a DAC process loaded with bench/own-time.ts writes its own time per request. */
  readonly ownTimeFile?: string | undefined
}

/**
 * A process's CPU time so far (user + system) in µs, from Linux's /proc (clock ticks of 10 ms); NaN
 * where there is no /proc. Divided by the requests served, it is a figure that other load on the
 * machine barely moves, unlike throughput.
 */
const cpuMicros = (pid: number | undefined) => {
  if (pid === undefined) return Number.NaN
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return Number.NaN
  }
}

let counter = 0
const payload = (contender: Contender, stream: boolean, content?: string) =>
  JSON.stringify({
    model: contender.model,
    // Distinct content: coalescing must not make any contender look faster than it is.
    messages: [{ role: "user", content: content ?? `bench ${counter++}` }],
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  })

/**
 * A closed loop of `concurrency` clients for `seconds`: throughput and latency percentiles. A
 * streaming client reads its whole stream: its latency is to the last byte.
 */
const throughput = async (contender: Contender, concurrency: number, stream: boolean) => {
  const pool = new Pool(contender.origin, {
    connections: concurrency,
    pipelining: 1,
    keepAliveTimeout: 60_000,
  })
  const latencies: Array<number> = []
  let errors = 0
  const until = performance.now() + seconds * 1000
  const worker = async () => {
    while (performance.now() < until) {
      const t0 = performance.now()
      const id = counter++
      try {
        const response = await pool.request({
          path: contender.path,
          method: "POST",
          // The id matches the request to its upstream call, whose body carries `bench <id>`.
          headers: { "content-type": "application/json", "x-bench-id": String(id), ...contender.headers },
          body: payload(contender, stream, `bench ${id}`),
        })
        await response.body.text()
        if (response.statusCode !== 200) errors++
        else latencies.push(performance.now() - t0)
      } catch {
        errors++
      }
    }
  }
  const started = performance.now()
  const cpuBefore = cpuMicros(contender.pid)
  if (contender.ownTimeFile !== undefined) {
    rmSync(contender.ownTimeFile, { force: true })
    process.kill(contender.pid!, "SIGUSR2")
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const elapsed = (performance.now() - started) / 1000
  const cpuPerRequest = (cpuMicros(contender.pid) - cpuBefore) / latencies.length
  const own = await ownTime(contender)
  await pool.close()
  return {
    rps: latencies.length / elapsed,
    cpuPerRequest,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    ownP50: percentile(own, 50),
    ownP99: percentile(own, 99),
    errors,
  }
}

/**
 * The time each request of the last run spent in the gateway itself (bench/own-time.ts): its
 * latency inside the process minus its upstream call. None for a contender that does not record it.
 */
const ownTime = async (contender: Contender): Promise<ReadonlyArray<number>> => {
  const file = contender.ownTimeFile
  if (file === undefined) return []
  process.kill(contender.pid!, "SIGUSR2")
  for (let wait = 0; wait < 100 && !existsSync(file); wait++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  // The gateway may still be writing it: an empty or cut-off file is read again.
  for (let wait = 0; wait < 100 && existsSync(file); wait++) {
    try {
      return (JSON.parse(readFileSync(file, "utf8")) as { ownMs: Array<number> }).ownMs
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  return []
}

/** Streamed requests: time to the first content chunk (the upstream's first token) at the client. */
const ttft = async (contender: Contender, n: number, concurrency: number) => {
  const pool = new Pool(contender.origin, { connections: concurrency, keepAliveTimeout: 60_000 })
  const values: Array<number> = []
  let next = 0
  const worker = async () => {
    while (next++ < n) {
      const t0 = performance.now()
      const response = await pool.request({
        path: contender.path,
        method: "POST",
        headers: { "content-type": "application/json", ...contender.headers },
        body: payload(contender, true),
      })
      let seen = false
      for await (const part of response.body) {
        if (!seen && part.toString().includes('"content":"Hello')) {
          seen = true
          values.push(performance.now() - t0)
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  await pool.close()
  return { p50: percentile(values, 50), p99: percentile(values, 99) }
}

/** Streamed requests aborted at the first content: abort → the upstream's socket closes. */
const cancelPropagation = async (contender: Contender, upstream: string, n: number) => {
  const values: Array<number> = []
  for (let i = 0; i < n; i++) {
    const marker = `cancel ${contender.name} ${i} ${Date.now()}`
    const controller = new AbortController()
    const response = await fetch(`${contender.origin}${contender.path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...contender.headers },
      body: payload(contender, true, marker),
      signal: controller.signal,
    })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    for (;;) {
      const part = await reader.read()
      if (part.done || new TextDecoder().decode(part.value).includes('"content":"Hello')) break
    }
    const abortedAt = performance.timeOrigin + performance.now()
    controller.abort()
    for (let wait = 0; wait < 200; wait++) {
      const stats = (await (await fetch(`${upstream}/stats`)).json()) as {
        closes: Array<{ marker: string; at: number }>
      }
      const close = stats.closes.find((c) => c.marker === marker)
      if (close) {
        values.push(close.at - abortedAt)
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  return { p50: percentile(values, 50), p99: percentile(values, 99), n: values.length }
}

const main = async () => {
  const { port: upstreamPort } = await startPrinting([
    "bench/upstream.ts",
    "--port",
    "0",
    "--ttft-ms",
    String(ttftMs),
    "--tokens",
    "20",
    "--token-ms",
    String(tokenMs),
  ])
  const upstream = `http://127.0.0.1:${upstreamPort}`
  const proxy = await startPrinting(["bench/proxy.ts", "--port", "0", "--target", `${upstream}/v1`])
  const dataDirs: Array<string> = []
  const { DATABASE_URL: _, ...inherited } = process.env
  /** A DAC gateway in its own process, on its own embedded store (or BENCH_DATABASE_URL). */
  const startDac = async (env: Record<string, string> = {}) => {
    const port = await freePort()
    const adminKey = `bench-admin-${randomUUID()}`
    const dataDir = mkdtempSync(join(tmpdir(), "dac-bench-"))
    dataDirs.push(dataDir)
    const ownTimeFile = join(dataDir, "own-time.json")
    const dac = spawn(
      node,
      ["--disable-warning=ExperimentalWarning", "--import", "./bench/own-time.ts", "src/main.ts"],
      {
        stdio: ["ignore", "ignore", "inherit"],
        env: {
          ...inherited,
          PORT: String(port),
          HOST: "127.0.0.1",
          DATA_DIR: dataDir,
          // DAC on a real PostgreSQL instead of its embedded store, when given one.
          ...(process.env.BENCH_DATABASE_URL ? { DATABASE_URL: process.env.BENCH_DATABASE_URL } : {}),
          LOG_LEVEL: "Error",
          OPENAI_BASE_URL: `${upstream}/v1`,
          OPENAI_API_KEY: "sk-bench",
          OPENAI_RPS: "1000000",
          OPENAI_BURST: "1000000",
          OPENAI_CONCURRENCY: "100000",
          OPENAI_MAX_QUEUE: "100000",
          OWN_TIME_FILE: ownTimeFile,
          // AUTH_MODE=keys (the default): the bench's key is issued through the admin API.
          ADMIN_API_KEY: adminKey,
          ...env,
        },
      },
    )
    children.push(dac)
    await waitHealthy(`http://127.0.0.1:${port}/health`)
    const issued = await fetch(`http://127.0.0.1:${port}/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ org_id: "bench", name: "bench" }),
    })
    if (issued.status !== 201) throw new Error(`could not issue the bench's key: ${issued.status}`)
    const { key } = (await issued.json()) as { key: string }
    return { port, pid: dac.pid!, ownTimeFile, key }
  }
  /** A DAC process as a contender: its OpenAI-compatible endpoint, with a bearer key. */
  const dacContender = (name: string, gateway: Awaited<ReturnType<typeof startDac>>): Contender => ({
    name,
    origin: `http://127.0.0.1:${gateway.port}`,
    pid: gateway.pid,
    ownTimeFile: gateway.ownTimeFile,
    path: "/v1/chat/completions",
    headers: { authorization: `Bearer ${gateway.key}` },
    model: "openai/bench",
  })
  const dac = await startDac()
  // The same gateway streaming from upstream even when the client waits for the whole reply.
  const dacStreamUp = await startDac({ UPSTREAM_STREAM: "always" })

  const contenders: Array<Contender> = [
    { name: "direct", origin: upstream, path: "/v1/chat/completions", headers: {}, model: "bench" },
    {
      name: "bare proxy",
      origin: `http://127.0.0.1:${proxy.port}`,
      pid: proxy.pid,
      path: "/v1/chat/completions",
      headers: {},
      model: "bench",
    },
    dacContender("DAC", dac),
    dacContender("DAC stream-up", dacStreamUp),
  ]
  const portkeyEntry = join(
    "bench",
    ".portkey",
    "node_modules",
    "@portkey-ai",
    "gateway",
    "build",
    "start-server.js",
  )
  if (existsSync(portkeyEntry)) {
    const portkeyPort = await freePort()
    const portkey = spawn(node, [portkeyEntry, `--port=${portkeyPort}`, "--headless"], {
      stdio: ["ignore", "ignore", "inherit"],
    })
    children.push(portkey)
    await waitHealthy(`http://127.0.0.1:${portkeyPort}/`)
    contenders.push({
      name: "Portkey",
      origin: `http://127.0.0.1:${portkeyPort}`,
      pid: portkey.pid,
      path: "/v1/chat/completions",
      headers: {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": `${upstream}/v1`,
        authorization: "Bearer sk-bench",
      },
      model: "bench",
    })
  } else {
    console.error("Portkey is not installed (npm run bench:portkey); comparing without it")
  }

  // Warm every path once.
  for (const contender of contenders) await throughput(contender, 10, false)

  type Row = Record<string, number | string>
  type Run = {
    rps: number
    cpuPerRequest: number
    p50: number
    p99: number
    ownP50: number
    ownP99: number
    errors: number
  }
  const mean = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0) / values.length

  /** Every contender at every concurrency, rounds alternated, as table rows. */
  const measure = async (stream: boolean): Promise<Array<Row>> => {
    const results: Record<string, Record<number, Array<Run>>> = {}
    for (let round = 0; round < rounds; round++) {
      for (const concurrency of concurrencies) {
        for (const contender of contenders) {
          const result = await throughput(contender, concurrency, stream)
          const byConcurrency = results[contender.name] ?? {}
          results[contender.name] = byConcurrency
          byConcurrency[concurrency] = [...(byConcurrency[concurrency] ?? []), result]
          console.error(
            `round ${round + 1} ${stream ? "streaming" : "non-streaming"} ${contender.name} c=${concurrency}: ${result.rps.toFixed(0)} req/s`,
          )
        }
      }
    }
    const rows: Array<Row> = []
    for (const concurrency of concurrencies) {
      const rpsOf = (name: string) => {
        const runs = results[name]?.[concurrency]
        return runs === undefined ? Number.NaN : mean(runs.map((r) => r.rps))
      }
      const directP50 = mean(results.direct![concurrency]!.map((r) => r.p50))
      const directP99 = mean(results.direct![concurrency]!.map((r) => r.p99))
      for (const contender of contenders) {
        const runs = results[contender.name]![concurrency]!
        const rps = mean(runs.map((r) => r.rps))
        rows.push({
          concurrency,
          contender: contender.name,
          "req/s": rps,
          "× bare proxy": rps / rpsOf("bare proxy"),
          "× Portkey": rps / rpsOf("Portkey"),
          "CPU µs/req": mean(runs.map((r) => r.cpuPerRequest)),
          "p50 ms": mean(runs.map((r) => r.p50)),
          "p99 ms": mean(runs.map((r) => r.p99)),
          "+p50 over direct": mean(runs.map((r) => r.p50)) - directP50,
          "+p99 over direct": mean(runs.map((r) => r.p99)) - directP99,
          "own p50 ms": mean(runs.map((r) => r.ownP50)),
          "own p99 ms": mean(runs.map((r) => r.ownP99)),
          errors: runs.reduce((sum, r) => sum + r.errors, 0),
        })
      }
    }
    return rows
  }

  const rows = await measure(false)
  const streamingRows = await measure(true)
  const streaming: Array<Row> = []
  for (const contender of contenders) {
    const t = await ttft(contender, 200, 10)
    const c =
      contender.name === "direct" || !paced ? undefined : await cancelPropagation(contender, upstream, 30)
    streaming.push({
      contender: contender.name,
      "TTFT p50 ms": t.p50,
      "TTFT p99 ms": t.p99,
      "cancel→upstream close p50 ms": c?.p50 ?? Number.NaN,
      "cancel→upstream close p99 ms": c?.p99 ?? Number.NaN,
      // An upstream request that was never aborted (within 1 s) is not counted above.
      "upstream aborted": c === undefined ? "-" : `${c.n}/30`,
    })
  }
  const text = [
    "Non-streaming clients (latency to the whole reply):",
    table(rows),
    "",
    "Streaming clients (every contender streams from upstream; latency to the last byte):",
    table(streamingRows),
    "",
    "Streaming: time to the first token at the client, and cancel propagation:",
    table(streaming),
  ].join("\n")
  console.log(text)
  // The default pace names the file by date alone; another pace says which; `--name` overrides both.
  const date = new Date().toISOString().slice(0, 10)
  const name =
    argValue("--name") ?? (ttftMs === 20 && tokenMs === 2 ? date : `${date}-ttft${ttftMs}-token${tokenMs}`)
  mkdirSync("bench/results", { recursive: true })
  writeFileSync(
    `bench/results/${name}.json`,
    JSON.stringify(
      {
        date,
        ttftMs,
        tokenMs,
        seconds,
        rounds,
        concurrencies,
        throughput: rows,
        streamingThroughput: streamingRows,
        streaming,
      },
      null,
      2,
    ),
  )
  writeFileSync(
    `bench/results/${name}.md`,
    `# Benchmark ${date}\n\nUpstream: TTFT ${ttftMs} ms, 20 tokens ${tokenMs} ms apart; ${seconds} s per run, ${rounds} rounds alternated; 2-core machine, loopback.\n\n\`\`\`\n${text}\n\`\`\`\n`,
  )
  for (const dataDir of dataDirs) rmSync(dataDir, { recursive: true, force: true })
}

try {
  await main()
} finally {
  for (const child of children) child.kill("SIGTERM")
}
