import { type Context, Deferred, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { newRequestId, type OrgId } from "../../src/domain/ids.ts"
import { firstGenerationFrameId, listenerBuffer } from "../../src/engine/frame-hub.ts"
import { Generations } from "../../src/engine/generations.ts"
import { unpacedTicket } from "../../src/engine/pacer.ts"
import type { Frame, FrameSink } from "../../src/engine/sse-frames.ts"
import type { ThreadActors } from "../../src/engine/thread-actors.ts"
import { makeMockProvider } from "../../src/providers/mock.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { ReposLive } from "../support/store.ts"
import { GenerationsLayer, queueTurn } from "../support/turns.ts"

const TestLayer = GenerationsLayer.pipe(
  Layer.provideMerge(ReposLive),
  Layer.provide(AppConfig.fromRecord({})),
)
const scope = Effect.runSync(Scope.make())
let context: Awaited<ReturnType<typeof build>>
const build = () => Effect.runPromise(Layer.buildWithScope(TestLayer, scope))
beforeAll(async () => {
  context = await build()
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

const run = <A, E>(effect: Effect.Effect<A, E, Generations | ThreadActors | ThreadsRepo>) =>
  Effect.runPromise(
    Effect.provideContext(effect, context as Context.Context<Generations | ThreadActors | ThreadsRepo>),
  )

const decoder = new TextDecoder()

describe("a listener that falls behind", () => {
  it("is ended with a resumable slow_consumer error; the others and the reply are unaffected", async () => {
    const org = `org-${crypto.randomUUID()}` as OrgId
    const tokens = listenerBuffer + 500
    const adapter = makeMockProvider({ ttftMs: 0, tokens, tokenIntervalMs: 0 })
    const result = await run(
      Effect.gen(function* () {
        const thread = yield* (yield* ThreadsRepo).create(org, null)
        const { requestId, turn } = yield* queueTurn(org, thread.thread_id, "long")
        const generations = yield* Generations
        const generation = yield* generations.start({
          org,
          ticket: unpacedTicket,
          requestId,
          adapter,
          startedAt: performance.now(),
          turn,
          request: { provider: "mock", model: "faststream-ttft", messages: [] },
        })
        // The slow listener takes its first frame, then stalls until the generation is over.
        const gate = yield* Deferred.make<void>()
        let slowCount = 0
        const slow = yield* generation.listen(newRequestId(), firstGenerationFrameId - 1).pipe(
          Stream.runForEach(() => {
            slowCount++
            return Deferred.await(gate)
          }),
          Effect.result,
          Effect.forkChild,
        )
        const fast = yield* generation.listen(requestId, firstGenerationFrameId - 1).pipe(Stream.runCollect)
        const outcome = yield* Deferred.await(generation.outcome)
        yield* Deferred.succeed(gate, undefined)
        const slowResult = yield* Fiber.join(slow)
        return { fast, slowResult, slowCount, outcome }
      }),
    )
    expect(result.fast.at(-1)!.type).toBe("done")
    expect(result.fast.filter((f) => f.type === "delta")).toHaveLength(tokens)
    // The slow listener's stream failed once its buffer was full (its frames so far were kept).
    expect(result.slowResult._tag).toBe("Failure")
    expect(result.slowCount).toBeLessThan(tokens)
    expect(result.outcome._tag).toBe("Completed")
    expect(decoder.decode(result.fast.at(-1)!.bytes)).toContain('"finish_reason":"stop"')
  })
})

/** A stream that takes `room` live frames, then reports itself full (as a client 1 MiB behind). */
const stallingSink = (room: number) => {
  const frames: Array<Frame> = []
  let droppedAfter: number | undefined
  let ended = false
  const sink: FrameSink = {
    replay: (log, afterId) => {
      for (let id = afterId + 1; id < log.end; id++) {
        const f = log.at(id)
        if (f !== undefined) frames.push(f)
      }
      return true
    },
    offer: (f) => {
      frames.push(f)
      return frames.length <= room
    },
    end: () => {
      ended = true
    },
    fellBehind: (lastId) => {
      droppedAfter = lastId
    },
  }
  return { sink, frames, droppedAfter: () => droppedAfter, ended: () => ended }
}

/** Starts a slow mock generation, as a thread turn (stored) or a stateless completion. */
const startSlow = (org: OrgId, stored: boolean) =>
  Effect.gen(function* () {
    const thread = yield* (yield* ThreadsRepo).create(org, null)
    const queued = stored ? yield* queueTurn(org, thread.thread_id, "slow") : undefined
    const requestId = queued?.requestId ?? newRequestId()
    const generation = yield* (yield* Generations).start({
      org,
      ticket: unpacedTicket,
      requestId,
      adapter: makeMockProvider({ ttftMs: 0, tokens: 40, tokenIntervalMs: 10 }),
      startedAt: performance.now(),
      turn: queued?.turn,
      request: { provider: "mock", model: "faststream-ttft", messages: [{ role: "user", content: "slow" }] },
    })
    return { requestId, generation }
  })

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/**
 * A slow generation whose only stream is dropped for falling behind after 3 frames; then its body
 * ends (slow_consumer written, the client gone) and detaches as a reply body does.
 */
const dropLoneStream = (org: OrgId, stored: boolean) =>
  Effect.gen(function* () {
    const { requestId, generation } = yield* startSlow(org, stored)
    const stalled = stallingSink(3)
    generation.subscribe(requestId, firstGenerationFrameId - 1, stalled.sink)
    yield* sleep(60)
    generation.detachUnsafe(requestId, stalled.sink)
    return { requestId, generation, stalled }
  })

describe("a lone stream dropped for falling behind", () => {
  const org = `org-${crypto.randomUUID()}` as OrgId

  it("keeps its thread turn running: the client reconnects with Last-Event-ID and gets the rest", async () => {
    const result = await run(
      Effect.gen(function* () {
        const { requestId, generation, stalled } = yield* dropLoneStream(org, true)
        yield* sleep(60)
        const runningWhileAway = !generation.isEnded()
        const lastId = stalled.droppedAfter()!
        const resumed = stallingSink(Number.POSITIVE_INFINITY)
        generation.subscribe(requestId, lastId, resumed.sink)
        const outcome = yield* Deferred.await(generation.outcome)
        return { runningWhileAway, lastId, stalled, resumed, outcome }
      }),
    )
    expect(result.lastId).toBeGreaterThanOrEqual(firstGenerationFrameId)
    expect(result.runningWhileAway).toBe(true)
    expect(result.outcome._tag).toBe("Completed")
    // No gap and no duplicate: the reconnect starts right after the last frame the client got.
    expect(result.resumed.frames[0]!.id).toBe(result.lastId + 1)
    expect(result.resumed.frames.at(-1)!.type).toBe("done")
    expect(result.resumed.ended()).toBe(true)
  })

  it("stops a stateless completion at once: it cannot be re-attached", async () => {
    const outcome = await run(
      Effect.gen(function* () {
        const { generation } = yield* dropLoneStream(org, false)
        return yield* Deferred.await(generation.outcome)
      }),
    )
    expect(outcome._tag).toBe("Cancelled")
  })

  it("ends the hold when the request is cancelled while its client is away", async () => {
    const result = await run(
      Effect.gen(function* () {
        const { requestId, generation } = yield* dropLoneStream(org, true)
        const started = performance.now()
        yield* generation.cancelRequest(requestId)
        const outcome = yield* Deferred.await(generation.outcome)
        return { outcome, stoppedAfterMs: performance.now() - started }
      }),
    )
    expect(result.outcome._tag).toBe("Cancelled")
    // At once, not when the 30 s grace would have been over.
    expect(result.stoppedAfterMs).toBeLessThan(1_000)
  })

  it("stops the generation once RECONNECT_GRACE_MS passed with no reconnect", async () => {
    const graceScope = Effect.runSync(Scope.make())
    const graceContext = await Effect.runPromise(
      Layer.buildWithScope(
        GenerationsLayer.pipe(
          Layer.provideMerge(ReposLive),
          Layer.provide(AppConfig.fromRecord({ RECONNECT_GRACE_MS: "150" })),
        ),
        graceScope,
      ),
    )
    try {
      const result = await Effect.runPromise(
        Effect.provideContext(
          Effect.gen(function* () {
            const { generation } = yield* dropLoneStream(org, true)
            yield* sleep(50)
            const runningWithinGrace = !generation.isEnded()
            const outcome = yield* Deferred.await(generation.outcome)
            return { runningWithinGrace, outcome }
          }),
          graceContext,
        ),
      )
      expect(result.runningWithinGrace).toBe(true)
      // 40 tokens 10 ms apart would take 400 ms: it was stopped when the grace was over.
      expect(result.outcome._tag).toBe("Cancelled")
    } finally {
      await Effect.runPromise(Scope.close(graceScope, Exit.void))
    }
  })
})
