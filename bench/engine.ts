/**
 * The engine's own cost, without HTTP or a network: turns through `Turns` in this process, on the
 * mock provider at zero pace (tokens back to back), on the embedded store (or `DATABASE_URL`).
 * Prints the CPU time each turn costs the process, a number that other load on the machine barely
 * moves, so a change to the per-request path can be compared before and after; then fan-out: one
 * generation of 300 tokens streamed to `--listeners` DAC-format SSE listeners, CPU per frame
 * delivered to one listener.
 *   npm run bench:engine -- [--turns 20000] [--concurrency 100] [--rounds 3] [--listeners 200]
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { argValue, table } from "../scripts/harness.ts"
import { AppConfig } from "../src/config.ts"
import { newRequestId, type OrgId, type ThreadId } from "../src/domain/ids.ts"
import { type TurnInput, Turns } from "../src/engine/turns.ts"
import { listenBody } from "../src/http/stream.ts"
import { appLayer } from "../src/layers.ts"
import type { ThreadsRepo } from "../src/store/threads-repo.ts"

const turns = Number(argValue("--turns") ?? "20000")
const concurrency = Number(argValue("--concurrency") ?? "100")
const rounds = Number(argValue("--rounds") ?? "3")
const listeners = Number(argValue("--listeners") ?? "200")
const fanOutTokens = 300

/** A gateway's configuration on a store folder of its own (one embedded store per folder). */
const configFor = (dataDir: string, mock: { readonly intervalMs: number; readonly tokens: number }) =>
  AppConfig.fromRecord({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "Error",
    DATA_DIR: dataDir,
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    MOCK_TTFT_MS: "0",
    MOCK_TOKEN_INTERVAL_MS: String(mock.intervalMs),
    MOCK_TOKENS: String(mock.tokens),
  })
const dataDir = mkdtempSync(join(tmpdir(), "dac-engine-bench-"))
const config = configFor(dataDir, { intervalMs: 0, tokens: 20 })
// Fan-out wants tokens spread out, so listeners are attached while they flow.
const fanOutDataDir = mkdtempSync(join(tmpdir(), "dac-engine-bench-"))
const fanOutConfig = configFor(fanOutDataDir, { intervalMs: 1, tokens: fanOutTokens })
const scope = Effect.runSync(Scope.make())
const context = (await Effect.runPromise(Layer.buildWithScope(appLayer(config), scope))) as Context.Context<
  Turns | ThreadsRepo
>
const run = Effect.runPromiseWith(context)
const engine = Context.get(context, Turns)
const org = "bench" as OrgId
/** Each thread takes this many turns: its history (sent upstream every turn) stays chat-sized. */
const turnsPerThread = 10
let threads: Array<ThreadId> = []
const makeThreads = async (n: number) => {
  threads = []
  for (let i = 0; i < Math.ceil(n / turnsPerThread); i++) {
    threads.push((await run(engine.createThread(org, "bench"))).thread_id as ThreadId)
  }
}

let counter = 0
/** Distinct content every time: no turn coalesces with another. */
const input = (kind: "stateless" | "thread", i: number): TurnInput => {
  const content = `bench ${counter++}`
  return {
    org,
    threadId: kind === "thread" ? threads[Math.floor(i / turnsPerThread)]! : null,
    conversation: kind === "thread" ? undefined : [{ role: "user", content }],
    body: { role: "user", content, provider: "mock", model: "faststream-ttft" },
    mode: "wait",
  }
}

const measure = async (kind: "stateless" | "thread", n: number) => {
  if (kind === "thread") await makeThreads(n)
  const cpu = process.cpuUsage()
  const started = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await run(engine.complete(input(kind, next++)))
    }),
  )
  const used = process.cpuUsage(cpu)
  return { cpuUs: (used.user + used.system) / n, perSecond: n / ((performance.now() - started) / 1000) }
}

/** One stateless generation streamed to `listeners` listeners; CPU per frame per listener. */
type Runner = <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
const fanOut = async (engineOf: Turns["Service"], runIn: Runner) => {
  const turn = await runIn(engineOf.start(input("stateless", 0)))
  const cpu = process.cpuUsage()
  let frames = 0
  await Promise.all(
    Array.from({ length: listeners }, (_, i) => {
      const body = listenBody(
        i === 0 ? turn.requestId : newRequestId(),
        turn.generation,
        "follower",
        -1,
        () => {},
        30_000,
      )
      return new Promise<void>((resolve) => {
        body.on("data", () => {
          frames++
        })
        body.on("end", resolve)
      })
    }),
  )
  const used = process.cpuUsage(cpu)
  return { frames, cpuUs: (used.user + used.system) / frames }
}

const rows: Array<Record<string, string | number>> = []
const fanOutRows: Array<Record<string, string | number>> = []
try {
  for (const kind of ["stateless", "thread"] as const) {
    await measure(kind, Math.min(turns, 2000)) // warm-up
    for (let round = 1; round <= rounds; round++) {
      const { cpuUs, perSecond } = await measure(kind, turns)
      rows.push({ turn: kind, round, turns, concurrency, "CPU µs per turn": cpuUs, "turns/s": perSecond })
    }
  }
  console.log(table(rows))
  // A second gateway in this process, paced for fan-out, on a store folder of its own.
  const fanOutScope = Effect.runSync(Scope.make())
  const fanOutContext = (await Effect.runPromise(
    Layer.buildWithScope(appLayer(fanOutConfig), fanOutScope),
  )) as Context.Context<Turns>
  const runFanOut = Effect.runPromiseWith(fanOutContext)
  const fanOutEngine = Context.get(fanOutContext, Turns)
  await fanOut(fanOutEngine, runFanOut) // warm-up
  for (let round = 1; round <= rounds; round++) {
    const { frames, cpuUs } = await fanOut(fanOutEngine, runFanOut)
    fanOutRows.push({ round, listeners, "frames delivered": frames, "CPU µs per frame per listener": cpuUs })
  }
  await Effect.runPromise(Scope.close(fanOutScope, Exit.void))
  console.log(`\n${table(fanOutRows)}`)
} finally {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  for (const dir of [dataDir, fanOutDataDir]) rmSync(dir, { recursive: true, force: true })
}
