import { type Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import type { OrgId, ThreadId } from "../../src/domain/ids.ts"
import type { Caller, KeyId, KeyLimits } from "../../src/domain/keys.ts"
import { KeyLimiter } from "../../src/engine/key-limits.ts"
import { type TurnInput, Turns } from "../../src/engine/turns.ts"
import { EngineServices } from "../../src/layers.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { ReposLive } from "../support/store.ts"

/** Per-key limits through Turns: a caller with limits, as the key middleware will hand it. */

const config = AppConfig.fromRecord({ MOCK_TTFT_MS: "0", MOCK_TOKENS: "3", MOCK_TOKEN_INTERVAL_MS: "1" })
const TestLayer = EngineServices.pipe(Layer.provideMerge(ReposLive), Layer.provide(config))

type Services = Turns | ThreadsRepo | KeyLimiter
const scope = Effect.runSync(Scope.make())
let context: Context.Context<Services>
beforeAll(async () => {
  context = (await Effect.runPromise(Layer.buildWithScope(TestLayer, scope))) as Context.Context<Services>
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

const run = <A, E>(effect: Effect.Effect<A, E, Services>) =>
  Effect.runPromise(Effect.provideContext(effect, context))

const keyCaller = (limits: KeyLimits): Caller => ({
  org: `org-${crypto.randomUUID()}` as OrgId,
  keyId: crypto.randomUUID() as KeyId,
  limits,
})

const turnOf = async (caller: Caller, model = "faststream-ttft"): Promise<(content: string) => TurnInput> => {
  const thread = await run(Effect.flatMap(ThreadsRepo, (threads) => threads.create(caller.org, null)))
  return (content) => ({
    org: caller.org,
    caller,
    threadId: thread.thread_id as ThreadId,
    mode: "wait",
    coalesce: false,
    body: { role: "user", content, provider: "mock", model },
  })
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined

const usage = (caller: Caller) => run(Effect.map(KeyLimiter, (limiter) => limiter.usage(caller.keyId!)))

describe("per-key limits in Turns", () => {
  it("concurrent_requests: a waiting request holds its slot until it ends, even by interruption", async () => {
    const caller = keyCaller({ concurrent_requests: 1 })
    const endless = await turnOf(caller, "never-ending")
    const quick = await turnOf(caller)
    const result = await run(
      Effect.gen(function* () {
        const turns = yield* Turns
        const waiting = yield* Effect.forkChild(turns.complete(endless("forever")), {
          startImmediately: true,
        })
        const refused = yield* Effect.exit(turns.send(quick("second")))
        yield* Fiber.interrupt(waiting)
        const after = yield* Effect.exit(turns.send(quick("third")))
        return { refused, after }
      }),
    )
    expect(failureOf(result.refused)).toMatchObject({ code: "key_concurrency_limited", status: 429 })
    expect(Exit.isSuccess(result.after)).toBe(true)
    expect((await usage(caller)).inFlight).toBe(0)
  })

  it("concurrent_requests: a stream holds its slot until its reply is recorded", async () => {
    const caller = keyCaller({ concurrent_requests: 1 })
    const turn = await turnOf(caller)
    const result = await run(
      Effect.gen(function* () {
        const turns = yield* Turns
        const started = yield* turns.start({ ...turn("streamed"), mode: "stream" })
        // The reply is generated, but its stream has not ended: the slot is still held.
        yield* Deferred.await(started.generation.outcome)
        const whileOpen = yield* Effect.exit(turns.send(turn("second")))
        started.record("detached")
        const afterClose = yield* Effect.exit(turns.send(turn("third")))
        return { whileOpen, afterClose }
      }),
    )
    expect(failureOf(result.whileOpen)).toMatchObject({ code: "key_concurrency_limited" })
    expect(Exit.isSuccess(result.afterClose)).toBe(true)
  })

  it("a start that fails gives the slot back at once", async () => {
    const caller = keyCaller({ concurrent_requests: 1 })
    const turn = await turnOf(caller)
    const bad = { ...turn("x"), body: { ...turn("x").body, model: "no-such-model" } }
    const exits = await run(
      Effect.flatMap(Turns, (turns) =>
        Effect.all([Effect.exit(turns.send(bad)), Effect.exit(turns.send(bad))]),
      ),
    )
    for (const exit of exits) expect(failureOf(exit)).toMatchObject({ code: "unknown_model" })
    expect((await usage(caller)).inFlight).toBe(0)
  })

  it("requests_per_minute: the third request in the minute is refused with a retry delay", async () => {
    const caller = keyCaller({ requests_per_minute: 2 })
    const turn = await turnOf(caller)
    const exits = await run(
      Effect.flatMap(Turns, (turns) =>
        Effect.all([turns.send(turn("1")), turns.send(turn("2")), turns.send(turn("3"))].map(Effect.exit)),
      ),
    )
    expect(Exit.isSuccess(exits[0]!)).toBe(true)
    expect(Exit.isSuccess(exits[1]!)).toBe(true)
    const refused = failureOf(exits[2]!) as { code: string; retryAfterMs: number }
    expect(refused.code).toBe("key_rate_limited")
    expect(refused.retryAfterMs).toBeGreaterThan(0)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000)
  })

  it("tokens_per_day: the reply that crosses the budget finishes; the next request is refused", async () => {
    const caller = keyCaller({ tokens_per_day: 4 })
    const turn = await turnOf(caller)
    const first = await run(Effect.exit(Effect.flatMap(Turns, (turns) => turns.send(turn("first")))))
    expect(Exit.isSuccess(first)).toBe(true)
    const charged = (await usage(caller)).tokensToday
    // The mock reports input (estimated) + 3 output tokens: over 4, yet the reply completed.
    expect(charged).toBeGreaterThan(4)
    const next = await run(Effect.exit(Effect.flatMap(Turns, (turns) => turns.send(turn("next")))))
    expect(failureOf(next)).toMatchObject({ code: "key_budget_exhausted", status: 429 })
  })

  it("a caller without a key is never limited", async () => {
    const caller: Caller = { org: `org-${crypto.randomUUID()}` as OrgId, keyId: null, limits: {} }
    const turn = await turnOf(caller)
    const exits = await run(
      Effect.flatMap(Turns, (turns) =>
        Effect.all(
          Array.from({ length: 5 }, (_, i) => Effect.exit(turns.send(turn(`n${i}`)))),
          { concurrency: "unbounded" },
        ),
      ),
    )
    for (const exit of exits) expect(Exit.isSuccess(exit)).toBe(true)
  })
})
