import { type Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { StoreUnavailable } from "../../src/domain/errors.ts"
import type { OrgId, ThreadId } from "../../src/domain/ids.ts"
import { type TurnInput, Turns } from "../../src/engine/turns.ts"
import { EngineServices } from "../../src/layers.ts"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { ReposLive } from "../support/store.ts"

/**
 * A turn whose start fails, however it fails, releases its coalescing key and hands every follower
 * the leader's own answer: nothing stays claimed, and the next identical request leads anew.
 */

type StartFault = "none" | "unavailable" | "defect"
let fault: StartFault = "none"
/** Each start waits this long first, so that identical requests pile up behind the leader. */
const startDelayMs = 50

const FaultyStarts = Layer.effect(
  MessagesRepo,
  Effect.map(MessagesRepo, (real) =>
    MessagesRepo.of({
      ...real,
      insertTurn: (turn) =>
        Effect.sleep(startDelayMs).pipe(
          Effect.andThen(
            Effect.suspend(() => {
              switch (fault) {
                case "unavailable":
                  return Effect.fail(new StoreUnavailable({ message: "the test cut the store" }))
                case "defect":
                  return Effect.die(new Error("a bug while storing a turn"))
                default:
                  return real.insertTurn(turn)
              }
            }),
          ),
        ),
    }),
  ),
)

const config = AppConfig.fromRecord({ MOCK_TTFT_MS: "0", MOCK_TOKENS: "3", MOCK_TOKEN_INTERVAL_MS: "0" })
const TestLayer = EngineServices.pipe(
  Layer.provide(FaultyStarts),
  Layer.provideMerge(ReposLive),
  Layer.provide(config),
)

const scope = Effect.runSync(Scope.make())
let context: Context.Context<Turns | ThreadsRepo>
beforeAll(async () => {
  context = (await Effect.runPromise(Layer.buildWithScope(TestLayer, scope))) as Context.Context<
    Turns | ThreadsRepo
  >
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

const run = <A, E>(effect: Effect.Effect<A, E, Turns | ThreadsRepo>) =>
  Effect.runPromise(Effect.provideContext(effect, context))

const newTurn = async (): Promise<TurnInput> => {
  const org = `org-${crypto.randomUUID()}` as OrgId
  const thread = await run(Effect.flatMap(ThreadsRepo, (threads) => threads.create(org, null)))
  return {
    org,
    threadId: thread.thread_id as ThreadId,
    mode: "wait",
    body: { role: "user", content: "same", provider: "mock", model: "faststream-ttft" },
  }
}

/** `n` identical turns at once: how each ended. */
const identical = (input: TurnInput, n: number) =>
  run(
    Effect.flatMap(Turns, (turns) =>
      Effect.all(
        Array.from({ length: n }, () => Effect.exit(turns.send(input))),
        { concurrency: "unbounded" },
      ),
    ),
  )

describe("a turn that cannot start", () => {
  it("store unavailable: the leader and every follower get a retryable store_unavailable, and the key is free at once", async () => {
    const input = await newTurn()
    fault = "unavailable"
    const exits = await identical(input, 5)
    for (const exit of exits) {
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
        expect(error).toMatchObject({ code: "store_unavailable", status: 503, retryable: true })
      }
    }
    fault = "none"
    const [next] = await identical(input, 1)
    expect(Exit.isSuccess(next!)).toBe(true)
    if (Exit.isSuccess(next!)) expect(next.value.coalesce).toBe("leader")
  })

  it("a defect: followers get the leader's answer (not a hang), and the key is free at once", async () => {
    const input = await newTurn()
    fault = "defect"
    const exits = await identical(input, 5)
    for (const exit of exits) {
      expect(Exit.isFailure(exit)).toBe(true)
      // A bug while storing is logged and answered as the store's failure: retryable, never a hang.
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
        expect(error).toMatchObject({ code: "store_unavailable", retryable: true })
      }
    }
    fault = "none"
    const [next] = await identical(input, 1)
    expect(Exit.isSuccess(next!)).toBe(true)
  })

  it("a leader interrupted while its turn is stored still stores it and starts it for its followers, then leaves it", async () => {
    const input = await newTurn()
    const result = await run(
      Effect.gen(function* () {
        const turns = yield* Turns
        const leader = yield* Effect.forkChild(turns.send(input))
        yield* Effect.sleep(5)
        const follower = yield* Effect.forkChild(turns.send(input))
        yield* Effect.sleep(5)
        // The leader hangs up half way through storing its turn.
        yield* Fiber.interrupt(leader)
        return yield* Fiber.join(follower)
      }),
    )
    expect(result.coalesce).toBe("follower")
    expect(result.assistant_message.status).toBe("complete")
  })
})
