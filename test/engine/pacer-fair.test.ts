import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { Pacer, type Ticket } from "../../src/engine/pacer.ts"

/** The fair share of the pacer's queue and slots per org (README, "Fair share"). */

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

/** The orgs, in the order their tickets get the only slot once `holder` gives it back. */
const dispatchOrder = (tickets: ReadonlyArray<{ org: string; ticket: Ticket }>, holder: Ticket) =>
  Effect.gen(function* () {
    const order: Array<string> = []
    const fibers = []
    for (const { org, ticket } of tickets) {
      const work = Effect.gen(function* () {
        yield* ticket.dispatched
        order.push(org)
        yield* Effect.yieldNow
        ticket.release()
      })
      fibers.push(yield* Effect.forkChild(work, { startImmediately: true }))
    }
    holder.release()
    yield* Fiber.awaitAll(fibers)
    return order
  })

/** Whether each ticket has its slot, after the dispatches already due have run. */
const dispatched = (tickets: ReadonlyArray<Ticket>) =>
  Effect.gen(function* () {
    const got = tickets.map(() => false)
    for (const [i, ticket] of tickets.entries()) {
      yield* Effect.forkChild(ticket.dispatched.pipe(Effect.tap(() => Effect.sync(() => (got[i] = true)))), {
        startImmediately: true,
      })
    }
    yield* Effect.yieldNow
    return got
  })

describe("the pacer's fair share per org", () => {
  it("CONCURRENCY=1, MAX_QUEUE=5: org A's six requests leave org B a place", async () => {
    const result = await withPacer({ MOCK_CONCURRENCY: "1", MOCK_MAX_QUEUE: "5" }, (pacer) =>
      Effect.gen(function* () {
        const first = yield* pacer.enqueue("mock", "a")
        yield* first.dispatched
        const queued = []
        for (let i = 0; i < 5; i++) queued.push({ org: "a", ticket: yield* pacer.enqueue("mock", "a") })
        // A alone may fill the queue; its seventh is refused.
        const aRefused = yield* Effect.flip(pacer.enqueue("mock", "a"))
        // B has no place yet: admitted over MAX_QUEUE.
        const b = yield* pacer.enqueue("mock", "b")
        const overfull = mockState(pacer).queued
        // B's second is over its share while the queue is full.
        const bRefused = yield* Effect.flip(pacer.enqueue("mock", "b"))
        const order = yield* dispatchOrder([...queued, { org: "b", ticket: b }], first)
        return { aRefused, bRefused, overfull, order, state: mockState(pacer) }
      }),
    )
    expect(result.aRefused._tag).toBe("PacerQueueFull")
    expect(result.overfull).toBe(6)
    expect(result.bRefused._tag).toBe("PacerQueueFull")
    // Round-robin: B goes right after A's first queued request, not after all five.
    expect(result.order.indexOf("b")).toBeLessThanOrEqual(1)
    expect(result.state).toMatchObject({ inFlight: 0, queued: 0 })
  })

  it("with two orgs waiting, each may hold at most ceil(MAX_QUEUE / 2) places", async () => {
    const result = await withPacer({ MOCK_CONCURRENCY: "1", MOCK_MAX_QUEUE: "6" }, (pacer) =>
      Effect.gen(function* () {
        const first = yield* pacer.enqueue("mock", "x")
        yield* first.dispatched
        yield* pacer.enqueue("mock", "b")
        let a = 0
        while ((yield* Effect.exit(pacer.enqueue("mock", "a")))._tag === "Success") a++
        return { a, queued: mockState(pacer).queued }
      }),
    )
    expect(result.a).toBe(3)
    expect(result.queued).toBe(4)
  })

  it("never holds more than 2 × MAX_QUEUE waiters, however many orgs arrive", async () => {
    const result = await withPacer({ MOCK_CONCURRENCY: "1", MOCK_MAX_QUEUE: "4" }, (pacer) =>
      Effect.gen(function* () {
        const first = yield* pacer.enqueue("mock", "x")
        yield* first.dispatched
        let admitted = 0
        for (let i = 0; i < 20; i++) {
          if ((yield* Effect.exit(pacer.enqueue("mock", `org-${i}`)))._tag === "Success") admitted++
        }
        return { admitted, queued: mockState(pacer).queued }
      }),
    )
    expect(result.admitted).toBe(8)
    expect(result.queued).toBe(8)
  })

  it("a freed slot goes to an org under its share of the in-flight slots", async () => {
    const result = await withPacer({ MOCK_CONCURRENCY: "2", MOCK_MAX_QUEUE: "10" }, (pacer) =>
      Effect.gen(function* () {
        // A holds both slots and has more waiting; B arrives after A's waiters.
        const a1 = yield* pacer.enqueue("mock", "a")
        const a2 = yield* pacer.enqueue("mock", "a")
        yield* a1.dispatched
        yield* a2.dispatched
        const a3 = yield* pacer.enqueue("mock", "a")
        const b1 = yield* pacer.enqueue("mock", "b")
        a1.release()
        const [a3Got, b1Got] = yield* dispatched([a3, b1])
        a2.release()
        a3.release()
        b1.release()
        return { a3Got, b1Got, state: mockState(pacer) }
      }),
    )
    expect(result.b1Got).toBe(true)
    expect(result.a3Got).toBe(false)
  })
})
