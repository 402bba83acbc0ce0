/**
 * 100 new thread turns at once (issue 15, item 4 "Bytes before the store"), side by side with the
 * same 100 requests sent direct to the upstream, on the embedded store and on PostgreSQL.
 *
 * A fake OpenAI upstream (bench/upstream.ts: 60 ms to its first token, then a few tokens) and the
 * gateway (`node src/main.ts`, AUTH_MODE=header, a pacer that is never the limit) run as child
 * processes on loopback. Each round creates fresh threads, sends the burst direct (time to the
 * upstream's first token), then through DAC (`POST /api/threads/{id}/messages/stream`), every
 * request on its own new connection. Per request: response headers, `ping`, first `meta`, the
 * `ttft_ms` meta, first `delta`, terminal event. Before the rounds: the same turn one at a time.
 *
 * Modes (each a gateway of its own): `plain` (the numbers), `profile` (the gateway under
 * `--cpu-prof`, samples inside the bursts summed by function, file and package), `trace` (spans
 * exported over OTLP/JSON to a receiver in this process, per span name and per turn). Every gateway
 * is loaded with bench/burst-probe.ts (its own per-request timeline and event-loop delay).
 *
 *   npm run bench:burst -- [--n 100] [--rounds 3] [--stores embedded,postgres] [--modes plain,profile,trace]
 *     [--ttft-ms 60] [--tokens 5] [--token-ms 5] [--pg-pool 10] [--pg-url postgres://postgres@127.0.0.1:5432]
 *     [--json bench/results/2026-12-01-turn-burst.json]
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client } from "undici"
import { freePort } from "../scripts/free-port.ts"
import { argValue, percentile } from "../scripts/harness.ts"
import { formatSummary, readProfile, summarize } from "./cpuprofile-top.ts"

const n = Number(argValue("--n") ?? "100")
const rounds = Number(argValue("--rounds") ?? "3")
const stores = (argValue("--stores") ?? "embedded,postgres").split(",")
const modes = (argValue("--modes") ?? "plain,profile,trace").split(",")
const ttftMs = Number(argValue("--ttft-ms") ?? "60")
const tokens = Number(argValue("--tokens") ?? "5")
const tokenMs = Number(argValue("--token-ms") ?? "5")
const pgPools = (argValue("--pg-pool") ?? "10").split(",")
const pgUrl = (argValue("--pg-url") ?? "postgres://postgres@127.0.0.1:5432").replace(/\/+$/, "")
const jsonOut = argValue("--json")
const node = process.execPath
const children: Array<ChildProcess> = []
const wall = () => performance.timeOrigin + performance.now()
const monoUs = () => Number(process.hrtime.bigint() / 1000n)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const out: Array<string> = []
const say = (line = "") => {
  out.push(line)
  console.log(line)
}

// ---------------------------------------------------------------------------------------------
// Processes

const startUpstream = (ttft = ttftMs, count = tokens) =>
  new Promise<number>((resolve, reject) => {
    const child = spawn(
      node,
      [
        "bench/upstream.ts",
        "--port",
        "0",
        "--ttft-ms",
        String(ttft),
        "--tokens",
        String(count),
        "--token-ms",
        String(tokenMs),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    )
    children.push(child)
    child.stdout!.once("data", (data: Buffer) => resolve(JSON.parse(data.toString().split("\n")[0]!).port))
    child.once("exit", (code) => reject(new Error(`upstream exited with ${code}`)))
  })

const waitHealthy = async (url: string) => {
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(url).then(
      (r) => r.status < 500,
      () => false,
    )
    if (ok) return
    await sleep(100)
  }
  throw new Error(`${url} did not come up`)
}

const psql = (sql: string) => {
  const result = spawnSync("psql", [`${pgUrl}/postgres`, "-v", "ON_ERROR_STOP=1", "-qc", sql], {
    encoding: "utf8",
  })
  if (result.status !== 0) throw new Error(`psql ${sql}: ${result.stderr}`)
}

interface Gateway {
  readonly origin: string
  readonly pid: number
  readonly probeFile: string
  readonly profileDir: string | undefined
  readonly stop: () => Promise<void>
}

const startGateway = async (
  store: string,
  mode: string,
  pool: string,
  otlp: string | undefined,
): Promise<Gateway> => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "dac-turn-burst-"))
  const probeFile = join(dir, "probe.json")
  const profileDir = mode === "profile" ? join(dir, "profile") : undefined
  let db: string | undefined
  if (store === "postgres") {
    db = `dac_burst_${process.pid}_${Date.now()}`
    psql(`CREATE DATABASE ${db}`)
  }
  const { DATABASE_URL: _, OTEL_EXPORTER_OTLP_ENDPOINT: __, ...inherited } = process.env
  const child = spawn(
    node,
    [
      "--disable-warning=ExperimentalWarning",
      ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, "--cpu-prof-interval=200"] : []),
      "--import",
      "./bench/burst-probe.ts",
      "src/main.ts",
    ],
    {
      stdio: ["ignore", "ignore", "inherit"],
      env: {
        ...inherited,
        PORT: String(port),
        HOST: "127.0.0.1",
        DATA_DIR: join(dir, "data"),
        ...(db ? { DATABASE_URL: `${pgUrl}/${db}`, DATABASE_POOL_SIZE: pool } : {}),
        LOG_LEVEL: "Error",
        AUTH_MODE: "header",
        OPENAI_BASE_URL: `http://127.0.0.1:${upstreamPort}/v1`,
        OPENAI_API_KEY: "x",
        OPENAI_RPS: "1000000",
        OPENAI_BURST: "1000000",
        OPENAI_CONCURRENCY: "100000",
        OPENAI_MAX_QUEUE: "100000",
        BURST_PROBE_FILE: probeFile,
        ...(otlp
          ? {
              OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
              OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
              OTEL_BSP_SCHEDULE_DELAY: "500",
            }
          : {}),
      },
    },
  )
  children.push(child)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const origin = `http://127.0.0.1:${port}`
  await waitHealthy(`${origin}/ready`)
  return {
    origin,
    pid: child.pid!,
    probeFile,
    profileDir,
    stop: async () => {
      child.kill("SIGTERM")
      await Promise.race([exited, sleep(30_000)])
      if (db) psql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    },
  }
}

/** CPU time (ms) of each thread of a process, from /proc. */
const threadCpu = (pid: number) => {
  const result = new Map<string, number>()
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      result.set(
        `${tid === String(pid) ? "main" : comm}#${tid}`,
        (Number(fields[11]) + Number(fields[12])) * 10,
      )
    }
  } catch {}
  return result
}

/** The whole machine's CPU (all cores), busy and total jiffies, from /proc/stat. */
const machineCpu = () => {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    const idle = fields[3]! + fields[4]!
    const total = fields.reduce((a, b) => a + b, 0)
    return { busy: total - idle, total }
  } catch {
    return { busy: Number.NaN, total: Number.NaN }
  }
}

const cpuDelta = (before: Map<string, number>, after: Map<string, number>) => {
  const rows: Array<[string, number]> = []
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0)
    if (d > 0) rows.push([k, d])
  }
  return rows.sort((a, b) => b[1] - a[1])
}

// ---------------------------------------------------------------------------------------------
// Requests

interface Marks {
  t0: number
  headers?: number
  ping?: number
  meta?: number
  ttftMeta?: number
  delta?: number
  terminal?: number
  terminalType?: string
  serverTtft?: number
  status?: number
  error?: string
}

/** One streamed request on a connection of its own; times in ms from its send. */
const streamOne = async (
  origin: string,
  path: string,
  headers: Record<string, string>,
  body: string,
  kind: "dac" | "direct",
): Promise<Marks> => {
  const client = new Client(origin, {
    pipelining: 1,
    connectTimeout: 60_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  })
  const t0 = performance.now()
  const marks: Marks = { t0: performance.timeOrigin + t0 }
  const at = () => performance.now() - t0
  try {
    const response = await client.request({
      method: "POST",
      path,
      headers: { "content-type": "application/json", ...headers },
      body,
    })
    marks.headers = at()
    marks.status = response.statusCode
    let buffer = ""
    for await (const chunk of response.body) {
      buffer += chunk.toString()
      for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
        const event = buffer.slice(0, i)
        buffer = buffer.slice(i + 2)
        const type = /^event: (.*)$/m.exec(event)?.[1]
        const data = /^data: (.*)$/m.exec(event)?.[1]
        const t = at()
        if (kind === "direct") {
          if (data === "[DONE]") {
            marks.terminal ??= t
            marks.terminalType = "done"
          } else if (data?.includes('"content"')) marks.delta ??= t
          continue
        }
        if (type === "ping") marks.ping ??= t
        else if (type === "meta") {
          if (data?.includes('"ttft_ms"')) {
            marks.ttftMeta ??= t
            marks.serverTtft = (JSON.parse(data) as { ttft_ms: number }).ttft_ms
          } else marks.meta ??= t
        } else if (type === "delta") marks.delta ??= t
        else if (type === "done" || type === "error" || type === "cancelled") {
          marks.terminal ??= t
          marks.terminalType = type
          if (type === "error") marks.error = data
        }
      }
    }
  } catch (error) {
    marks.error = String(error)
  } finally {
    await client.close().catch(() => {})
  }
  return marks
}

let counter = 0
const turnBody = (id: number) =>
  JSON.stringify({ role: "user", content: `hi ${id}`, provider: "openai", model: "gpt-4o-mini" })
const directBody = (id: number) =>
  JSON.stringify({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `hi ${id}` }],
    stream: true,
    stream_options: { include_usage: true },
  })

const createThreads = async (origin: string, org: string, count: number) => {
  const ids: Array<string> = []
  for (let i = 0; i < count; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, count - i) }, async () => {
        const response = await fetch(`${origin}/api/threads`, {
          method: "POST",
          headers: { "x-org-id": org, "content-type": "application/json" },
          body: JSON.stringify({ title: "burst" }),
        })
        if (response.status !== 201) throw new Error(`POST /api/threads: ${response.status}`)
        return ((await response.json()) as { thread_id: string }).thread_id
      }),
    )
    ids.push(...batch)
  }
  return ids
}

const dacTurn = (origin: string, org: string, thread: string) => {
  const id = counter++
  return streamOne(
    origin,
    `/api/threads/${thread}/messages/stream`,
    { "x-org-id": org, "x-burst-id": String(id) },
    turnBody(id),
    "dac",
  )
}
const directTurn = () =>
  streamOne(`http://127.0.0.1:${upstreamPort}`, "/v1/chat/completions", {}, directBody(counter++), "direct")
/** The floor: an upstream that answers at once (0 ms to its first token): what 100 new connections cost here. */
const floorTurn = () =>
  streamOne(`http://127.0.0.1:${floorPort}`, "/v1/chat/completions", {}, directBody(counter++), "direct")

// ---------------------------------------------------------------------------------------------
// Figures

type Stats = { p50: number; p95: number; max: number }
const stats = (values: ReadonlyArray<number | undefined>): Stats => {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x))
  return { p50: percentile(v, 50), p95: percentile(v, 95), max: v.length ? Math.max(...v) : Number.NaN }
}
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–")
const fs3 = (s: Stats) => `${f(s.p50)} / ${f(s.p95)} / ${f(s.max)}`

interface BurstRow {
  store: string
  mode: string
  pool: string
  round: number | string
  floor?: Stats
  gatewayCpuDuringDirect?: number
  direct: Stats
  headers: Stats
  ping: Stats
  meta: Stats
  ttftMeta: Stats
  delta: Stats
  terminal: Stats
  serverTtft: Stats
  addedP50: number
  addedP95: number
  errors: number
  inGateway?: Record<string, Stats>
  loop?: { p50: number; p99: number; max: number; mean: number }
  cpu?: Array<[string, number]>
  machineBusy?: number
  loadavg?: string
}
const rows: Array<BurstRow> = []
const spanReports: Array<unknown> = []

const toRow = (
  store: string,
  mode: string,
  pool: string,
  round: number | string,
  direct: ReadonlyArray<Marks>,
  dac: ReadonlyArray<Marks>,
): BurstRow => {
  const d = stats(direct.map((m) => m.delta))
  const delta = stats(dac.map((m) => m.delta))
  return {
    store,
    mode,
    pool,
    round,
    direct: d,
    headers: stats(dac.map((m) => m.headers)),
    ping: stats(dac.map((m) => m.ping)),
    meta: stats(dac.map((m) => m.meta)),
    ttftMeta: stats(dac.map((m) => m.ttftMeta)),
    delta,
    terminal: stats(dac.map((m) => m.terminal)),
    serverTtft: stats(dac.map((m) => m.serverTtft)),
    addedP50: delta.p50 - d.p50,
    addedP95: delta.p95 - d.p95,
    errors: dac.filter((m) => m.error !== undefined || m.terminalType !== "done").length,
  }
}

const signalProbe = async (gateway: Gateway, stop: boolean) => {
  if (stop) rmSync(gateway.probeFile, { force: true })
  process.kill(gateway.pid, "SIGUSR2")
  if (!stop) return undefined
  for (let i = 0; i < 200 && !existsSync(gateway.probeFile); i++) await sleep(10)
  await sleep(20)
  return JSON.parse(readFileSync(gateway.probeFile, "utf8")) as {
    requests: Record<
      string,
      {
        arrived: number
        headersWritten?: number
        firstWrite?: number
        dispatched?: number
        upstreamHeaders?: number
        upstreamFirstData?: number
      }
    >
    loop: { p50: number; p99: number; max: number; mean: number }
  }
}

/** The gateway's own view: each request's phases, from Node's `request` event. */
const inGateway = (
  probe: NonNullable<Awaited<ReturnType<typeof signalProbe>>>,
  sentAt: Map<string, number>,
): Record<string, Stats> => {
  const list = Object.entries(probe.requests)
  const firstArrival = Math.min(...list.map(([, t]) => t.arrived))
  const rel = (pick: (t: (typeof list)[number][1], id: string) => number | undefined) =>
    stats(list.map(([id, t]) => pick(t, id)))
  return {
    "client send → Node `request` event": rel((t, id) =>
      sentAt.has(id) ? t.arrived - sentAt.get(id)! : undefined,
    ),
    "`request` event, from the burst's first": rel((t) => t.arrived - firstArrival),
    "`request` → response headers written": rel((t) =>
      t.headersWritten === undefined ? undefined : t.headersWritten - t.arrived,
    ),
    "`request` → first body write (ping)": rel((t) =>
      t.firstWrite === undefined ? undefined : t.firstWrite - t.arrived,
    ),
    "`request` → upstream dispatched": rel((t) =>
      t.dispatched === undefined ? undefined : t.dispatched - t.arrived,
    ),
    "upstream dispatched → upstream headers": rel((t) =>
      t.upstreamHeaders === undefined || t.dispatched === undefined
        ? undefined
        : t.upstreamHeaders - t.dispatched,
    ),
    "upstream dispatched → first upstream data": rel((t) =>
      t.upstreamFirstData === undefined || t.dispatched === undefined
        ? undefined
        : t.upstreamFirstData - t.dispatched,
    ),
  }
}

// ---------------------------------------------------------------------------------------------
// OTLP/JSON receiver (trace mode)

interface Span {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  start: number
  end: number
}
let spans: Array<Span> = []
const otlpServer = createServer((request, response) => {
  const parts: Array<Buffer> = []
  request.on("data", (p: Buffer) => parts.push(p))
  request.on("end", () => {
    if (request.url?.endsWith("/v1/traces")) {
      try {
        const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as {
          resourceSpans?: Array<{
            scopeSpans?: Array<{
              spans?: Array<{
                traceId: string
                spanId: string
                parentSpanId?: string
                name: string
                startTimeUnixNano: string
                endTimeUnixNano: string
              }>
            }>
          }>
        }
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? [])
              spans.push({
                traceId: s.traceId,
                spanId: s.spanId,
                ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
                name: s.name,
                start: Number(BigInt(s.startTimeUnixNano) / 1000n) / 1000,
                end: Number(BigInt(s.endTimeUnixNano) / 1000n) / 1000,
              })
      } catch {}
    }
    response.writeHead(200, { "content-type": "application/json" }).end("{}")
  })
})

/** Spans of one burst: per name, and each streamed turn's path through them. */
const spanReport = (label: string, window: [number, number]) => {
  const inWindow = spans.filter((s) => s.start >= window[0] - 5 && s.start <= window[1])
  const byName = new Map<string, Array<Span>>()
  for (const s of inWindow) byName.set(s.name, [...(byName.get(s.name) ?? []), s])
  say(`\n#### Spans: ${label}\n`)
  say("| span | count | duration p50 / p95 / max ms | start from burst's first span p50 / p95 / max ms |")
  say("| --- | ---: | ---: | ---: |")
  const t0 = Math.min(...inWindow.map((s) => s.start))
  for (const [name, list] of [...byName].sort((a, b) => a[1][0]!.start - b[1][0]!.start)) {
    say(
      `| ${name} | ${list.length} | ${fs3(stats(list.map((s) => s.end - s.start)))} | ${fs3(stats(list.map((s) => s.start - t0)))} |`,
    )
  }
  // The queue of startTurn statements: when each one finished, in order.
  const starts = (byName.get("MessagesRepo.startTurn") ?? []).sort((a, b) => a.end - b.end)
  if (starts.length > 0) {
    const gaps = starts.slice(1).map((s, i) => s.end - starts[i]!.end)
    const picks = [1, 10, 25, 50, 75, 90, 100].filter((k) => k <= starts.length)
    say(
      `\nstartTurn completions (ms after the burst's first span): ${picks
        .map((k) => `#${k} ${f(starts[k - 1]!.end - t0)}`)
        .join(", ")}; gap between consecutive completions p50 ${f(percentile(gaps, 50))} ms, mean ${f(
        gaps.reduce((a, b) => a + b, 0) / Math.max(gaps.length, 1),
      )} ms`,
    )
  }
  spanReports.push({ label, byName: Object.fromEntries([...byName].map(([k, v]) => [k, v.length])) })
}

// ---------------------------------------------------------------------------------------------

const upstreamPort = await startUpstream()
const floorPort = await startUpstream(0, 1)
const otlpPort = await freePort()
await new Promise<void>((resolve) => otlpServer.listen(otlpPort, "127.0.0.1", resolve))

const printRows = (list: ReadonlyArray<BurstRow>) => {
  say(
    "| store | mode | round | floor (0 ms upstream) | direct TTFT | DAC headers | DAC ping | DAC meta | DAC ttft meta | DAC first delta | DAC terminal | TTFT added p50 | TTFT added p95 | bad |",
  )
  say("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for (const r of list) {
    say(
      `| ${r.store}${r.store === "postgres" ? ` (pool ${r.pool})` : ""} | ${r.mode} | ${r.round} | ${r.floor ? fs3(r.floor) : "–"} | ${fs3(r.direct)} | ${fs3(r.headers)} | ${fs3(r.ping)} | ${fs3(r.meta)} | ${fs3(r.ttftMeta)} | ${fs3(r.delta)} | ${fs3(r.terminal)} | ${f(r.addedP50)} | ${f(r.addedP95)} | ${r.errors} |`,
    )
  }
}

try {
  say(
    `# turn burst: ${n} simultaneous new thread turns, upstream ${ttftMs} ms to first token, ${tokens} tokens ${tokenMs} ms apart`,
  )
  say(
    `node ${process.version}, ${new Date().toISOString()}; cells are p50 / p95 / max ms from each request's send`,
  )
  for (const store of stores) {
    for (const pool of store === "postgres" ? pgPools : ["1"]) {
      for (const mode of modes) {
        spans = []
        const gateway = await startGateway(
          store,
          mode,
          pool,
          mode === "trace" ? `http://127.0.0.1:${otlpPort}` : undefined,
        )
        const org = `burst-${store}-${mode}-${Date.now()}`
        say(`\n## ${store}${store === "postgres" ? ` (DATABASE_POOL_SIZE=${pool})` : ""}, ${mode}\n`)
        // Warm-up: a few turns alone and a small burst (JIT, pools, prepared statements).
        const warm = await createThreads(gateway.origin, org, 30)
        for (const t of warm.slice(0, 5)) await dacTurn(gateway.origin, org, t)
        await Promise.all(warm.slice(5).map((t) => dacTurn(gateway.origin, org, t)))
        await Promise.all(Array.from({ length: 25 }, directTurn))
        // One at a time: what a turn costs with no queue.
        const serialThreads = await createThreads(gateway.origin, org, 20)
        const serialDac: Array<Marks> = []
        const serialDirect: Array<Marks> = []
        const serialWindow: [number, number] = [wall(), 0]
        for (const t of serialThreads) {
          serialDirect.push(await directTurn())
          serialDac.push(await dacTurn(gateway.origin, org, t))
        }
        serialWindow[1] = wall()
        const serialRow = toRow(store, mode, pool, "1 at a time ×20", serialDirect, serialDac)
        rows.push(serialRow)
        const windows: Array<[number, number]> = []
        const modeRows: Array<BurstRow> = [serialRow]
        const burstWindows: Array<[number, number]> = []
        for (let round = 1; round <= rounds; round++) {
          const threads = await createThreads(gateway.origin, org, n)
          await sleep(200)
          const floor = await Promise.all(Array.from({ length: n }, floorTurn))
          await sleep(100)
          const idleCpu = threadCpu(gateway.pid)
          const direct = await Promise.all(Array.from({ length: n }, directTurn))
          const idleDelta = cpuDelta(idleCpu, threadCpu(gateway.pid)).reduce((a, [, v]) => a + v, 0)
          await sleep(200)
          await signalProbe(gateway, false)
          const cpuBefore = threadCpu(gateway.pid)
          const machineBefore = machineCpu()
          const w0 = monoUs()
          const t0 = wall()
          const first = counter
          const dac = await Promise.all(threads.map((t) => dacTurn(gateway.origin, org, t)))
          windows.push([w0, monoUs()])
          burstWindows.push([t0, wall()])
          const cpu = cpuDelta(cpuBefore, threadCpu(gateway.pid))
          const machineAfter = machineCpu()
          const machineBusy =
            (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)
          const probe = await signalProbe(gateway, true)
          const row = toRow(store, mode, pool, round, direct, dac)
          row.floor = stats(floor.map((m) => m.delta))
          row.gatewayCpuDuringDirect = idleDelta
          const sentAt = new Map(dac.map((m, i) => [String(first + i), m.t0]))
          if (probe) {
            row.inGateway = inGateway(probe, sentAt)
            row.loop = probe.loop
          }
          row.cpu = cpu
          row.machineBusy = machineBusy
          row.loadavg = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
          rows.push(row)
          modeRows.push(row)
          const bad = dac.filter((m) => m.error !== undefined || m.terminalType !== "done")
          if (bad.length > 0) console.error(`${bad.length} bad, e.g.`, bad[0])
          await sleep(300)
        }
        printRows(modeRows)
        for (const r of modeRows) {
          if (r.inGateway === undefined) continue
          say(
            `\nround ${r.round}: gateway CPU while the direct burst ran ${r.gatewayCpuDuringDirect} ms; inside the gateway (bench/burst-probe.ts), p50 / p95 / max ms; event-loop delay p50 ${f(r.loop!.p50)} p99 ${f(r.loop!.p99)} max ${f(r.loop!.max)} ms; machine (all cores) busy ${f(100 * r.machineBusy!)}% during the burst, load average ${r.loadavg} (other sessions share this 2-core machine); gateway CPU during the burst: ${r.cpu!.map(([k, v]) => `${k} ${v} ms`).join(", ")}\n`,
          )
          say("| phase | p50 / p95 / max ms |")
          say("| --- | ---: |")
          for (const [k, v] of Object.entries(r.inGateway)) say(`| ${k} | ${fs3(v)} |`)
        }
        if (mode === "trace") {
          await sleep(1500)
          spanReport(`${store}, one at a time ×20`, serialWindow)
          burstWindows.forEach((w, i) => {
            spanReport(`${store}, burst round ${i + 1}`, w)
          })
        }
        await gateway.stop()
        if (gateway.profileDir) {
          const files = existsSync(gateway.profileDir) ? readdirSync(gateway.profileDir) : []
          for (const file of files.sort()) {
            const profile = readProfile(join(gateway.profileDir, file))
            say(
              `\n#### CPU profile ${file} (samples inside the ${rounds} bursts; profile clock ${profile.startTime} µs, bench clock at burst 1 ${windows[0]?.[0]} µs)\n`,
            )
            say(formatSummary(summarize(profile, windows, 30), file))
          }
          mkdirSync("bench/.profiles", { recursive: true })
          for (const file of files) {
            writeFileSync(
              join("bench/.profiles", `${store}-${file}`),
              readFileSync(join(gateway.profileDir, file)),
            )
          }
          writeFileSync(join("bench/.profiles", `${store}-windows.json`), JSON.stringify(windows))
        }
      }
    }
  }
  say("\n## All rounds\n")
  printRows(rows)
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ n, ttftMs, tokens, tokenMs, rows }, null, 2))
  writeFileSync(join(tmpdir(), "turn-burst-last.md"), out.join("\n"))
} finally {
  for (const child of children) child.kill("SIGTERM")
  otlpServer.close()
}
// Children are gone and the receiver closed; idle keep-alive sockets must not hold the bench open.
process.exit(0)
