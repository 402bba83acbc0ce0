/**
 * `npm run bench:pacer`: what a request pays for its pacer slot, local (one process) against shared
 * (REDIS_URL: the slot taken from Redis by a Lua script), side by side. Each request is
 * `Pacer.enqueue` → `ticket.dispatched` → `ticket.release()`, with limits too high to ever wait, so
 * only the pacer's own cost is measured: wall time per request one at a time (the latency a
 * request gains), requests per second and CPU µs per request with 64 at once (the cost under
 * load; the shared pacer then takes several slots per round trip). Needs Redis at REDIS_URL
 * (default redis://127.0.0.1:6379); writes only keys under a fresh `dac-bench-*` prefix.
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { AppConfig } from "../src/config.ts"
import { Pacer } from "../src/engine/pacer.ts"
import { SharedPacer, sharedPacerLayer } from "../src/engine/shared-pacer.ts"
import { SharedRedis } from "../src/store/redis.ts"

const sequential = Number(process.env.BENCH_PACER_SEQUENTIAL ?? 5_000)
const concurrent = Number(process.env.BENCH_PACER_CONCURRENT ?? 50_000)
const workers = 64
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379"

const config = AppConfig.fromRecord({
  LOG_LEVEL: "Error",
  OPENAI_RPS: "10000000",
  OPENAI_BURST: "10000000",
  OPENAI_CONCURRENCY: "100000",
  OPENAI_MAX_QUEUE: "100000",
  REDIS_URL: redisUrl,
  REDIS_KEY_PREFIX: `dac-bench-${Date.now()}-${process.pid}:`,
  REPLICA_ID: "bench",
})

const build = async <A>(layer: Layer.Layer<A, unknown, never>) => {
  const scope = Effect.runSync(Scope.make())
  const context = (await Effect.runPromise(Layer.buildWithScope(layer, scope))) as Context.Context<A>
  return { context, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const oneRequest = (pacer: Pacer["Service"]) =>
  Effect.gen(function* () {
    const ticket = yield* pacer.enqueue("openai", "bench-org")
    yield* ticket.dispatched
    ticket.release()
  })

const measure = async (pacer: Pacer["Service"]) => {
  const run = (effect: Effect.Effect<unknown, unknown>) => Effect.runPromise(effect)
  // Warm-up (JIT, the script loaded into Redis).
  for (let i = 0; i < 500; i++) await run(oneRequest(pacer))
  let t = performance.now()
  for (let i = 0; i < sequential; i++) await run(oneRequest(pacer))
  const sequentialUs = ((performance.now() - t) * 1000) / sequential
  let left = concurrent
  const cpu = process.cpuUsage()
  t = performance.now()
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (left-- > 0) await run(oneRequest(pacer))
    }),
  )
  const elapsed = performance.now() - t
  const used = process.cpuUsage(cpu)
  return {
    sequentialUs,
    concurrentRps: concurrent / (elapsed / 1000),
    cpuUsPerRequest: (used.user + used.system) / concurrent,
  }
}

const local = await build(Pacer.layer.pipe(Layer.provide(config)))
const localFigures = await measure(Context.get(local.context, Pacer))
await local.close()

const shared = await build(
  Layer.mergeAll(sharedPacerLayer).pipe(Layer.provideMerge(SharedRedis.layer), Layer.provideMerge(config)),
)
const redis = Context.get(shared.context, SharedRedis)
for (let i = 0; i < 100 && !redis.isUp(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
if (!redis.isUp()) throw new Error(`no Redis at ${redisUrl}`)
const sharedFigures = await measure(Context.get(shared.context, Pacer))
const cost = (await Effect.runPromise(Context.get(shared.context, SharedPacer).status)).cost
await shared.close()

const row = (name: string, f: typeof localFigures) =>
  `${name.padEnd(8)}  ${f.sequentialUs.toFixed(1).padStart(17)}  ${f.concurrentRps.toFixed(0).padStart(15)}  ${f.cpuUsPerRequest.toFixed(1).padStart(14)}`
console.log(
  `Pacer cost per request (enqueue → dispatched → release), Redis at ${redisUrl.replace(/\/\/[^@]*@/, "//")}`,
)
console.log(`pacer     µs/req, 1 at a time  req/s, ${workers} at once  CPU µs/req (${workers})`)
console.log(`--------  -------------------  -----------------  --------------`)
console.log(row("local", localFigures))
console.log(row("shared", sharedFigures))
console.log(
  `shared: ${cost.roundTrips} Redis round trips (mean ${cost.meanMs} ms), ${cost.slotsPerTrip} slots per trip`,
)
process.exit(0)
