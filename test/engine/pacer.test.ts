import { Effect, Exit, Fiber, Layer, Random, Scope } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { RateLimited } from "../../src/domain/provider-errors.ts"
import { Pacer } from "../../src/engine/pacer.ts"

const withPacer = async <A>(
  env: Record<string, string>,
  body: (pacer: Pacer["Service"]) => Effect.Effect<A, unknown>,
) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(Pacer.layer.pipe(Layer.provide(AppConfig.fromRecord(env))), scope),
  )
  try {
    return await Effect.runPromise(Effect.flatMap(Pacer, body).pipe(Effect.provideContext(context)))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const mockState = (pacer: Pacer["Service"]) => pacer.state().find((s) => s.provider === "mock")!

describe("pacer", () => {
  it("never lets more than the concurrency limit through, and leaks nothing under random interruption", async () => {
    const result = await withPacer({ MOCK_CONCURRENCY: "3", MOCK_MAX_QUEUE: "1000" }, (pacer) =>
      Effect.gen(function* () {
        let inFlight = 0
        let peak = 0
        const fibers = []
        for (let i = 0; i < 200; i++) {
          const ticket = yield* pacer.enqueue("mock", `org-${i % 7}`)
          const work = Effect.gen(function* () {
            yield* ticket.dispatched
            inFlight++
            peak = Math.max(peak, inFlight)
            yield* Effect.sleep(yield* Random.nextIntBetween(0, 3)).pipe(
              Effect.ensuring(Effect.sync(() => inFlight--)),
            )
            ticket.release()
          }).pipe(Effect.onInterrupt(() => Effect.sync(ticket.abandon)))
          fibers.push(yield* Effect.forkChild(work, { startImmediately: true }))
        }
        // Interrupt a random third of them, queued or running.
        for (const fiber of fibers)
          if ((yield* Random.nextBetween(0, 1)) < 0.33) yield* Fiber.interrupt(fiber)
        yield* Fiber.awaitAll(fibers)
        return { peak, state: mockState(pacer) }
      }),
    )
    expect(result.peak).toBeLessThanOrEqual(3)
    expect(result.state.inFlight).toBe(0)
    expect(result.state.queued).toBe(0)
  })

  it("refuses at once when the queue is full", async () => {
    const error = await withPacer({ MOCK_CONCURRENCY: "1", MOCK_MAX_QUEUE: "2" }, (pacer) =>
      Effect.gen(function* () {
        const first = yield* pacer.enqueue("mock", "a")
        yield* first.dispatched
        yield* pacer.enqueue("mock", "a")
        yield* pacer.enqueue("mock", "a")
        return yield* Effect.flip(pacer.enqueue("mock", "a"))
      }),
    )
    expect(error._tag).toBe("PacerQueueFull")
    expect(error.retryAfterMs).toBeGreaterThanOrEqual(1000)
  })

  it("a RateLimited answer pauses dispatch for the retry delay and halves concurrency", async () => {
    const result = await withPacer({ MOCK_CONCURRENCY: "8" }, (pacer) =>
      Effect.gen(function* () {
        const first = yield* pacer.enqueue("mock", "a")
        yield* first.dispatched
        first.release(new RateLimited({ provider: "mock", message: "slow down", retryAfterMs: 300 }))
        const paused = mockState(pacer)
        const next = yield* pacer.enqueue("mock", "a")
        const waited = yield* next.dispatched
        next.release()
        return { paused, waited, after: mockState(pacer) }
      }),
    )
    expect(result.paused.concurrencyLimit).toBe(4)
    expect(result.paused.pausedUntil).not.toBeNull()
    expect(result.waited).toBeGreaterThanOrEqual(250)
    expect(result.after.concurrencyLimit).toBe(5)
  })

  it("paces dispatch at the configured rate", async () => {
    const times = await withPacer({ MOCK_RPS: "20", MOCK_BURST: "1" }, (pacer) =>
      Effect.gen(function* () {
        const tickets = []
        for (let i = 0; i < 10; i++) tickets.push(yield* pacer.enqueue("mock", "a"))
        const waits = []
        for (const ticket of tickets) {
          waits.push(yield* ticket.dispatched)
          ticket.release()
        }
        return waits
      }),
    )
    // One token up front, then one per 50 ms: the tenth request waits about 450 ms.
    expect(times[9]!).toBeGreaterThanOrEqual(430)
    expect(times[9]!).toBeLessThan(1000)
  })
})
