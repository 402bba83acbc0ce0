import { Context, Effect, Exit, Layer, Scope } from "effect"
import { describe, expect, it } from "vitest"
import { type RequestLogEntry, RequestLogRepo } from "../../src/store/request-log-repo.ts"
import { type OutagePolicy, RequestLog } from "../../src/telemetry/request-log.ts"

/** A request log table that is away while `down` is set, or hangs while `hang` is. */
const fakeRepo = () => {
  const rows = new Map<string, RequestLogEntry>()
  const state = { down: false, hang: false, attempts: 0 }
  const layer = Layer.succeed(
    RequestLogRepo,
    RequestLogRepo.of({
      insertMany: (entries) =>
        Effect.suspend(() => {
          state.attempts++
          if (state.hang) return Effect.never
          if (state.down) return Effect.die(new Error("connection refused"))
          for (const entry of entries) rows.set(entry.request_id, entry)
          return Effect.void
        }),
      recent: () => Effect.succeed([]),
      usageByDay: () => Effect.succeed([]),
    }),
  )
  return { rows, state, layer }
}

const entry = (i: number): RequestLogEntry => ({
  request_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
  org_id: "org-outage",
  thread_id: null,
  provider: "mock",
  model: "faststream-ttft",
  coalesce: "bypass",
  status: "ok",
  error_code: null,
  queue_wait_ms: 0,
  ttft_ms: 1,
  latency_ms: 2,
  input_tokens: 1,
  output_tokens: 1,
})

const build = async (policy: OutagePolicy) => {
  const repo = fakeRepo()
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(RequestLog.layerWith(policy).pipe(Layer.provide(repo.layer)), scope),
  )
  const log = Context.get(context, RequestLog)
  return { repo, log, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

describe("the request log during a database outage", () => {
  it("keeps failed batches and writes them once the database is back", async () => {
    const { repo, log, close } = await build({
      retryForMs: 60_000,
      maxBacklog: 10_000,
      writeTimeoutMs: 1_000,
    })
    repo.state.down = true
    for (let i = 0; i < 1_200; i++) log.record(entry(i))
    await Effect.runPromise(log.flush)
    await Effect.runPromise(log.flush)
    expect(repo.rows.size).toBe(0)
    expect(log.backlog()).toBe(1_200)
    repo.state.down = false
    await Effect.runPromise(log.flush)
    expect(repo.rows.size).toBe(1_200)
    expect(log.backlog()).toBe(0)
    await close()
  })

  it("holds at most maxBacklog entries, and drops a batch that failed for retryForMs", async () => {
    const { repo, log, close } = await build({ retryForMs: 200, maxBacklog: 1_000, writeTimeoutMs: 1_000 })
    repo.state.down = true
    for (let i = 0; i < 5_000; i++) log.record(entry(i))
    expect(log.backlog()).toBe(1_000)
    // The in-memory window (performance summary, metrics) still has every request.
    expect(log.lastN(10_000)).toHaveLength(5_000)
    await Effect.runPromise(log.flush)
    await new Promise((resolve) => setTimeout(resolve, 250))
    await Effect.runPromise(log.flush)
    // The oldest batch (500 entries) failed for longer than retryForMs and was dropped; the next
    // batch failed for the first time just now and stays.
    expect(log.backlog()).toBe(500)
    repo.state.down = false
    log.record(entry(9_999))
    await Effect.runPromise(log.flush)
    expect(repo.rows.size).toBe(501)
    expect(log.backlog()).toBe(0)
    await close()
  })

  it("gives up on a write that hangs, and the next flush still runs", async () => {
    const { repo, log, close } = await build({ retryForMs: 60_000, maxBacklog: 10_000, writeTimeoutMs: 100 })
    repo.state.hang = true
    log.record(entry(1))
    const started = Date.now()
    await Effect.runPromise(log.flush)
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(log.backlog()).toBe(1)
    repo.state.hang = false
    await Effect.runPromise(log.flush)
    expect(repo.rows.size).toBe(1)
    await close()
  })
})
