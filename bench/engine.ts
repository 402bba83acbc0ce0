/**
 * The engine's own cost, without HTTP or a network: turns through `Turns` in this process, on the
 * mock provider at zero pace (tokens back to back), on the embedded store (or `DATABASE_URL`).
 * Prints the CPU time each turn costs the process, a number that other load on the machine barely
 * moves, so a change to the per-request path can be compared before and after.
 *   npm run bench:engine -- [--turns 20000] [--concurrency 100] [--rounds 3]
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { argValue, table } from "../scripts/harness.ts"
import { AppConfig } from "../src/config.ts"
import type { OrgId, ThreadId } from "../src/domain/ids.ts"
import { type TurnInput, Turns } from "../src/engine/turns.ts"
import { appLayer } from "../src/layers.ts"
import { ThreadsRepo } from "../src/store/threads-repo.ts"

const turns = Number(argValue("--turns") ?? "20000")
const concurrency = Number(argValue("--concurrency") ?? "100")
const rounds = Number(argValue("--rounds") ?? "3")

const dataDir = mkdtempSync(join(tmpdir(), "dac-engine-bench-"))
const config = AppConfig.fromRecord({
  PORT: "0",
  HOST: "127.0.0.1",
  LOG_LEVEL: "Error",
  DATA_DIR: dataDir,
  ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
  MOCK_TTFT_MS: "0",
  MOCK_TOKEN_INTERVAL_MS: "0",
  MOCK_TOKENS: "20",
})
const scope = Effect.runSync(Scope.make())
const context = (await Effect.runPromise(Layer.buildWithScope(appLayer(config), scope))) as Context.Context<
  Turns | ThreadsRepo
>
const run = Effect.runPromiseWith(context)
const engine = Context.get(context, Turns)
const threadsRepo = Context.get(context, ThreadsRepo)
const org = "bench" as OrgId
/** Each thread takes this many turns: its history (sent upstream every turn) stays chat-sized. */
const turnsPerThread = 10
let threads: Array<ThreadId> = []
const makeThreads = async (n: number) => {
  threads = []
  for (let i = 0; i < Math.ceil(n / turnsPerThread); i++) {
    threads.push((await run(threadsRepo.create(org, "bench"))).thread_id as ThreadId)
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

const rows: Array<Record<string, string | number>> = []
try {
  for (const kind of ["stateless", "thread"] as const) {
    await measure(kind, Math.min(turns, 2000)) // warm-up
    for (let round = 1; round <= rounds; round++) {
      const { cpuUs, perSecond } = await measure(kind, turns)
      rows.push({ turn: kind, round, turns, concurrency, "CPU µs per turn": cpuUs, "turns/s": perSecond })
    }
  }
  console.log(table(rows))
} finally {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  rmSync(dataDir, { recursive: true, force: true })
}
