import { type Context, Deferred, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { newRequestId, type OrgId } from "../../src/domain/ids.ts"
import { firstGenerationFrameId, Generations, listenerBuffer } from "../../src/engine/generations.ts"
import { unpacedTicket } from "../../src/engine/pacer.ts"
import { makeMockProvider } from "../../src/providers/mock.ts"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { ReposLive } from "../support/store.ts"

const TestLayer = Generations.layer.pipe(
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

const run = <A, E>(effect: Effect.Effect<A, E, Generations | MessagesRepo | ThreadsRepo>) =>
  Effect.runPromise(
    Effect.provideContext(effect, context as Context.Context<Generations | MessagesRepo | ThreadsRepo>),
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
        const requestId = newRequestId()
        const started = yield* (yield* MessagesRepo).startTurn({
          org,
          threadId: thread.thread_id,
          requestId,
          content: "long",
          provider: "mock",
          model: "faststream-ttft",
        })
        const generations = yield* Generations
        const generation = yield* generations.start({
          org,
          ticket: unpacedTicket,
          requestId,
          adapter,
          startedAt: performance.now(),
          assistantMessage: started.assistantMessage,
          request: { provider: "mock", model: "faststream-ttft", messages: started.history },
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
