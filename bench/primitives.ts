/**
 * DAC's own engine code against Effect's ready primitives, side by side in one process:
 *
 * 1. Fan-out of one generation's frames to N listeners: `FrameHub` (src/engine/frame-hub.ts,
 *    synchronous offer to counting `FrameSink`s) against `PubSub` with N subscriber fibers, and the
 *    cost of a late joiner replaying the log (FrameHub `join`, live and after `close`) against a
 *    `PubSub` with a `replay` buffer.
 * 2. Admission per request: `Pacer` (enqueue → dispatched → release, limits so high nothing waits)
 *    against `Semaphore.withPermit` + `RateLimiter.consume` (token bucket, memory store).
 * 3. Forgetting things after a fixed delay: `makeDeadlines` (one timer for all) against one sleeping
 *    fiber per item (`Effect.forkDetach` / `Effect.forkChild`), and a Node timer per item.
 *
 * Variants alternate inside every round (A B C A B C …); each cell is the median of the rounds with
 * min–max. Wall-clock figures: the machine is shared, read the spread.
 *   npm run bench:primitives -- [--rounds 5] [--frames 2000] [--listeners 1,10,100,1000]
 *     [--requests 20000] [--items 10000] [--sections fanout,admission,deadlines]
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { Context, Deferred, Duration, Effect, Fiber, Layer, PubSub, Semaphore } from "effect"
import { RateLimiter } from "effect/persistence"
import { argValue, table } from "../scripts/harness.ts"
import { AppConfig } from "../src/config.ts"
import type { RequestId } from "../src/domain/ids.ts"
import { makeDeadlines } from "../src/engine/deadlines.ts"
import { FrameHub } from "../src/engine/frame-hub.ts"
import { Pacer } from "../src/engine/pacer.ts"
import { type Frame, type FrameSink, type FrameSource, frame } from "../src/engine/sse-frames.ts"

const rounds = Number(argValue("--rounds") ?? "5")
const frames = Number(argValue("--frames") ?? "2000")
const listenerCounts = (argValue("--listeners") ?? "1,10,100,1000").split(",").map(Number)
const requests = Number(argValue("--requests") ?? "20000")
const items = Number(argValue("--items") ?? "10000")
const sections = (argValue("--sections") ?? "fanout,admission,deadlines").split(",")
const gc = (globalThis as { gc?: () => void }).gc

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const fmt = (x: number) =>
  x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3)
/** "median (min–max)" of the rounds. */
const cell = (xs: ReadonlyArray<number>) =>
  `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`

/** Runs every variant once per round, in turn, and collects each one's numbers by key. */
const interleave = async <K extends string>(
  variants: ReadonlyArray<{ readonly name: string; readonly run: () => Promise<Record<K, number>> }>,
) => {
  const results = new Map<string, Array<Record<K, number>>>(variants.map((v) => [v.name, []]))
  for (const v of variants) await v.run() // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const v of variants) {
      gc?.()
      results.get(v.name)!.push(await v.run())
    }
  }
  return (name: string, key: K) => results.get(name)!.map((r) => r[key])
}

const loadavg = () => {
  try {
    // Linux only; the bench is read on the 2-core box.
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
  } catch {
    return "?"
  }
}
const require = createRequire(import.meta.url)

const deltaData = { text: "tok " }
const rid = (i: number) => `req-${i}` as RequestId

// ---------------------------------------------------------------------------------------------
// 1. Fan-out

/** A sink that counts what it is given (replay reads the shared log frame by frame, like a body). */
const countingSink = (counter: { n: number }): FrameSink => ({
  replay: (log: FrameSource, afterId: number) => {
    for (let id = afterId + 1; id < log.end; id++) if (log.at(id) !== undefined) counter.n++
    return true
  },
  offer: () => {
    counter.n++
    return true
  },
  end: () => {},
  fellBehind: () => {},
})

const frameHubFanOut = async (n: number) => {
  const hub = new FrameHub(() => {})
  const counter = { n: 0 }
  for (let i = 0; i < n; i++) hub.join(rid(i), -1, countingSink(counter), false)
  const t0 = performance.now()
  const cpu = process.cpuUsage()
  for (let i = 0; i < frames; i++) hub.emit("delta", deltaData)
  hub.endAll()
  const used = process.cpuUsage(cpu)
  const ns = (performance.now() - t0) * 1e6
  if (counter.n !== n * frames) throw new Error(`FrameHub delivered ${counter.n}`)
  return { ns, cpuNs: (used.user + used.system) * 1000 }
}

// A sentinel for the subscribers to stop on (never a real frame: its id is negative).
const END = frame(-2, "cancelled", {})

/**
 * N subscriber fibers on one PubSub. `perFrame`: the publisher yields after each frame, so every
 * subscriber wakes once per frame (tokens arriving one by one, the live case) and takes one; else
 * all frames are published at once and each subscriber drains them with `takeAll` (best case).
 */
const pubSubFanOut = (n: number, kind: "unbounded" | "bounded", perFrame: boolean) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const pubsub =
          kind === "unbounded" ? yield* PubSub.unbounded<Frame>() : yield* PubSub.bounded<Frame>(frames + 1)
        const counter = { n: 0 }
        const subs = yield* Effect.forEach(Array.from({ length: n }), () => PubSub.subscribe(pubsub))
        const fibers = yield* Effect.forEach(subs, (sub) =>
          Effect.forkChild(
            perFrame
              ? Effect.gen(function* () {
                  while (true) {
                    const f = yield* PubSub.take(sub)
                    if (f === END) return
                    counter.n++
                  }
                })
              : Effect.gen(function* () {
                  while (true) {
                    const batch = yield* PubSub.takeAll(sub)
                    for (const f of batch) {
                      if (f === END) return
                      counter.n++
                    }
                  }
                }),
          ),
        )
        yield* Effect.yieldNow // every subscriber parked on its first take
        const t0 = performance.now()
        const cpu = process.cpuUsage()
        for (let i = 0; i < frames; i++) {
          PubSub.publishUnsafe(pubsub, frame(i + 2, "delta", deltaData))
          if (perFrame) yield* Effect.yieldNow
        }
        PubSub.publishUnsafe(pubsub, END)
        yield* Fiber.joinAll(fibers)
        const used = process.cpuUsage(cpu)
        const ns = (performance.now() - t0) * 1e6
        if (counter.n !== n * frames) throw new Error(`PubSub delivered ${counter.n}`)
        return { ns, cpuNs: (used.user + used.system) * 1000 }
      }),
    ),
  )

const joiners = 50

/** A late joiner replaying `frames` frames from a FrameHub's log (live, or after `close`: folded). */
const frameHubReplay = async (closed: boolean) => {
  const hub = new FrameHub(() => {})
  for (let i = 0; i < frames; i++) hub.emit("delta", deltaData)
  if (closed) hub.close()
  const counter = { n: 0 }
  const t0 = performance.now()
  for (let j = 0; j < joiners; j++) hub.join(rid(j), -1, countingSink(counter), closed)
  const us = ((performance.now() - t0) * 1000) / joiners
  if (counter.n !== joiners * frames) throw new Error(`FrameHub replayed ${counter.n}`)
  return { us }
}

/** A late subscriber of a PubSub with a `replay` buffer of `frames`: subscribe and take them all. */
const pubSubReplay = () =>
  Effect.runPromise(
    Effect.gen(function* () {
      const pubsub = yield* PubSub.unbounded<Frame>({ replay: frames })
      for (let i = 0; i < frames; i++) PubSub.publishUnsafe(pubsub, frame(i + 2, "delta", deltaData))
      let got = 0
      const t0 = performance.now()
      for (let j = 0; j < joiners; j++) {
        yield* Effect.scoped(
          Effect.gen(function* () {
            const sub = yield* PubSub.subscribe(pubsub)
            let taken = 0
            while (taken < frames) taken += (yield* PubSub.takeAll(sub)).length
            got += taken
          }),
        )
      }
      const us = ((performance.now() - t0) * 1000) / joiners
      if (got !== joiners * frames) throw new Error(`PubSub replayed ${got}`)
      return { us }
    }),
  )

const fanOutSection = async () => {
  const rows: Array<Record<string, string | number>> = []
  for (const n of listenerCounts) {
    const yieldOnly = "publisher's yield per frame alone (0 subscribers)"
    const variants = [
      { name: "FrameHub.emit → counting sinks", perFrame: false, run: () => frameHubFanOut(n) },
      { name: yieldOnly, perFrame: false, run: () => pubSubFanOut(0, "unbounded", true) },
      {
        name: "PubSub.unbounded, take per frame (publisher yields per frame)",
        perFrame: true,
        run: () => pubSubFanOut(n, "unbounded", true),
      },
      {
        name: "PubSub.bounded, take per frame (publisher yields per frame)",
        perFrame: true,
        run: () => pubSubFanOut(n, "bounded", true),
      },
      {
        name: "PubSub.unbounded, publish all at once, takeAll",
        perFrame: false,
        run: () => pubSubFanOut(n, "unbounded", false),
      },
    ]
    const get = await interleave<"ns" | "cpuNs">(variants)
    const yieldCpu = median(get(yieldOnly, "cpuNs"))
    for (const v of variants) {
      if (v.name === yieldOnly) continue
      const per = (xs: ReadonlyArray<number>) => xs.map((x) => x / (n * frames))
      rows.push({
        listeners: n,
        variant: v.name,
        "wall ns per frame per listener": cell(per(get(v.name, "ns"))),
        "CPU ns per frame per listener": cell(per(get(v.name, "cpuNs"))),
        // Take out what the publisher's hop costs by itself: it stands for tokens arriving apart.
        "CPU ns, net of the publisher's yield": v.perFrame
          ? fmt(median(per(get(v.name, "cpuNs").map((x) => x - yieldCpu))))
          : "-",
      })
    }
    rows.push({
      listeners: n,
      variant: yieldOnly,
      "wall ns per frame per listener": `${fmt(median(get(yieldOnly, "ns")) / frames)} per frame`,
      "CPU ns per frame per listener": `${fmt(yieldCpu / frames)} per frame`,
      "CPU ns, net of the publisher's yield": "-",
    })
    console.error(`fan-out N=${n} done (load ${loadavg()})`)
  }
  const replayVariants = [
    { name: "FrameHub.join, live log (replay from the shared log)", run: () => frameHubReplay(false) },
    { name: "FrameHub.join, closed (compacted) log", run: () => frameHubReplay(true) },
    { name: "PubSub.unbounded({ replay: 2000 }): subscribe + takeAll", run: () => pubSubReplay() },
  ]
  const get = await interleave<"us">(replayVariants)
  const replayRows = replayVariants.map((v) => ({
    frames,
    variant: v.name,
    "µs per late joiner": cell(get(v.name, "us")),
    "ns per replayed frame": cell(get(v.name, "us").map((us) => (us * 1000) / frames)),
  }))
  return { rows, replayRows }
}

// ---------------------------------------------------------------------------------------------
// 2. Admission

const pacerConfig = AppConfig.fromRecord({
  LOG_LEVEL: "Error",
  MOCK_RPS: "1000000000",
  MOCK_BURST: "1000000000",
  MOCK_CONCURRENCY: "1000000",
  MOCK_MAX_QUEUE: "1000000",
})

const timeRequests = async (concurrency: number, one: Effect.Effect<void>) => {
  const list = Array.from({ length: requests })
  const cpu = process.cpuUsage()
  const t0 = performance.now()
  await Effect.runPromise(Effect.forEach(list, () => one, { concurrency, discard: true }))
  const wallUs = ((performance.now() - t0) * 1000) / requests
  const used = process.cpuUsage(cpu)
  return { wallUs, cpuUs: (used.user + used.system) / requests }
}

const admissionSection = async () => {
  // The scope is closed at once: the Pacer's finalizer only clears timers, the service still works.
  const pacerContext = await Effect.runPromise(
    Effect.scoped(Layer.build(Pacer.layer.pipe(Layer.provide(pacerConfig)))),
  )
  const pacer = Context.get(pacerContext, Pacer)
  const limiterContext = await Effect.runPromise(
    Effect.scoped(Layer.build(RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory)))),
  )
  const limiter = Context.get(limiterContext, RateLimiter.RateLimiter)
  const sem = await Effect.runPromise(Semaphore.make(1_000_000))
  const consume = limiter
    .consume({
      key: "mock",
      limit: 1_000_000_000,
      window: Duration.seconds(1),
      algorithm: "token-bucket",
      onExceeded: "delay",
    })
    .pipe(
      Effect.flatMap((r) => (Duration.isZero(r.delay) ? Effect.void : Effect.sleep(r.delay))),
      Effect.orDie,
    )

  const rows: Array<Record<string, string | number>> = []
  // What runs between admission and release: nothing (the bookkeeping alone), or one scheduler hop
  // (the request suspends holding its slot, so at concurrency 100 there are 100 in flight).
  for (const [workName, work] of [
    ["none", Effect.void],
    ["one yield", Effect.yieldNow],
  ] as const) {
    const viaPacer = pacer.enqueue("mock", "bench").pipe(
      Effect.flatMap((ticket) =>
        ticket.dispatched.pipe(Effect.andThen(work), Effect.ensuring(Effect.sync(() => ticket.release()))),
      ),
      Effect.orDie,
    )
    const viaEffect = sem.withPermit(consume.pipe(Effect.andThen(work)))
    for (const concurrency of [1, 100]) {
      const variants = [
        { name: "baseline: no admission (the work alone)", run: () => timeRequests(concurrency, work) },
        { name: "Pacer: enqueue → dispatched → release", run: () => timeRequests(concurrency, viaPacer) },
        {
          name: "Semaphore.withPermit + RateLimiter.consume",
          run: () => timeRequests(concurrency, viaEffect),
        },
        { name: "Semaphore.withPermit alone", run: () => timeRequests(concurrency, sem.withPermit(work)) },
        {
          name: "RateLimiter.consume alone",
          run: () => timeRequests(concurrency, consume.pipe(Effect.andThen(work))),
        },
      ]
      const get = await interleave<"wallUs" | "cpuUs">(variants)
      const baseWall = median(get(variants[0]!.name, "wallUs"))
      const baseCpu = median(get(variants[0]!.name, "cpuUs"))
      for (const v of variants) {
        rows.push({
          work: workName,
          concurrency,
          variant: v.name,
          "µs per request (wall)": cell(get(v.name, "wallUs")),
          "CPU µs per request": cell(get(v.name, "cpuUs")),
          "wall µs above baseline": fmt(median(get(v.name, "wallUs")) - baseWall),
          "CPU µs above baseline": fmt(median(get(v.name, "cpuUs")) - baseCpu),
        })
      }
      console.error(`admission work=${workName} c=${concurrency} done (load ${loadavg()})`)
    }
  }
  return rows
}

// ---------------------------------------------------------------------------------------------
// 3. Deadlines

const heap = () => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}

interface Forgetter {
  /** Schedules every item's delete `delayMs` from now; returns a cleanup for the ones still waiting. */
  readonly schedule: (map: Map<number, object>, delayMs: number) => Promise<() => void>
}

const viaDeadlines: Forgetter = {
  schedule: async (map, delayMs) => {
    const deadlines = makeDeadlines()
    for (const key of map.keys()) deadlines.after(delayMs, () => map.delete(key))
    return () => deadlines.clear()
  },
}

const viaForkDetach: Forgetter = {
  schedule: async (map, delayMs) => {
    const fibers = Effect.runSync(
      Effect.forEach([...map.keys()], (key) =>
        Effect.forkDetach(Effect.sleep(delayMs).pipe(Effect.andThen(Effect.sync(() => map.delete(key))))),
      ),
    )
    return () => {
      Effect.runFork(Fiber.interruptAll(fibers))
    }
  },
}

/** A long-lived parent (the service's own fiber) forks one child per item. */
const viaForkChild: Forgetter = {
  schedule: async (map, delayMs) => {
    const stop = Deferred.makeUnsafe<void>()
    const ready = Deferred.makeUnsafe<void>()
    Effect.runFork(
      Effect.gen(function* () {
        for (const key of map.keys()) {
          yield* Effect.forkChild(
            Effect.sleep(delayMs).pipe(Effect.andThen(Effect.sync(() => map.delete(key)))),
          )
        }
        Deferred.doneUnsafe(ready, Effect.void)
        yield* Deferred.await(stop)
      }),
    )
    // The parent yields to the scheduler now and then while it forks: wait until every child exists.
    await Effect.runPromise(Deferred.await(ready))
    return () => Deferred.doneUnsafe(stop, Effect.void)
  },
}

const viaSetTimeout: Forgetter = {
  schedule: async (map, delayMs) => {
    const timers: Array<ReturnType<typeof setTimeout>> = []
    for (const key of map.keys()) timers.push(setTimeout(() => map.delete(key), delayMs))
    return () => {
      for (const t of timers) clearTimeout(t)
    }
  },
}

const sleepMs = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const itemsMap = () => new Map(Array.from({ length: items }, (_, i) => [i, { i }] as const))

/** Scheduling cost and heap per waiting item (a delay that does not fall due while measured). */
const measureWaiting = async (forgetter: Forgetter) => {
  const map = itemsMap()
  const before = heap()
  const t0 = performance.now()
  const cleanup = await forgetter.schedule(map, 600_000)
  const us = ((performance.now() - t0) * 1000) / items
  const after = heap()
  cleanup()
  await sleepMs(5) // let interrupts finish
  if (map.size !== items) throw new Error("an item was forgotten early")
  return { us, bytes: (after - before) / items }
}

/** Schedule + fire: CPU per item for a 20 ms delay, until every item is gone. */
const measureFiring = async (forgetter: Forgetter) => {
  const map = itemsMap()
  const cpu = process.cpuUsage()
  await forgetter.schedule(map, 20)
  while (map.size > 0) await sleepMs(5)
  const used = process.cpuUsage(cpu)
  return { cpuUs: (used.user + used.system) / items }
}

const deadlinesSection = async () => {
  const forgetters = [
    { name: "makeDeadlines (one timer for all)", f: viaDeadlines },
    { name: "Effect.forkDetach(sleep → delete) per item", f: viaForkDetach },
    { name: "Effect.forkChild(sleep → delete) per item, one parent", f: viaForkChild },
    { name: "setTimeout per item (reference)", f: viaSetTimeout },
  ]
  const variants = forgetters.map(({ name, f }) => ({
    name,
    run: async () => ({ ...(await measureWaiting(f)), ...(await measureFiring(f)) }),
  }))
  const get = await interleave<"us" | "bytes" | "cpuUs">(variants)
  console.error(`deadlines done (load ${loadavg()})`)
  return variants.map((v) => ({
    items,
    variant: v.name,
    "µs per item to schedule": cell(get(v.name, "us")),
    "heap bytes per waiting item": cell(get(v.name, "bytes")),
    "CPU µs per item, schedule + fire (20 ms)": cell(get(v.name, "cpuUs")),
  }))
}

// ---------------------------------------------------------------------------------------------

console.log(
  `# primitives bench ${new Date().toISOString()}\nnode ${process.version}, effect ${require("effect/package.json").version}, rounds ${rounds} (median (min–max)), gc ${gc ? "exposed" : "NOT exposed: run with --expose-gc"}, load ${loadavg()}\n`,
)
if (sections.includes("fanout")) {
  const { rows, replayRows } = await fanOutSection()
  console.log(`## 1. Fan-out, ${frames} frames per run\n\n${table(rows)}\n`)
  console.log(
    `## 1b. Late joiner replaying ${frames} frames (${joiners} joiners per round)\n\n${table(replayRows)}\n`,
  )
}
if (sections.includes("admission")) {
  console.log(`## 2. Admission, ${requests} requests per round\n\n${table(await admissionSection())}\n`)
}
if (sections.includes("deadlines")) {
  console.log(`## 3. Forgetting after a fixed delay, ${items} items\n\n${table(await deadlinesSection())}\n`)
}
console.log(`load at the end: ${loadavg()}`)
