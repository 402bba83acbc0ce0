import { type Context, Deferred, Effect, Exit, Layer, Option, Scope, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { StoreUnavailable } from "../../src/domain/errors.ts"
import type { OrgId } from "../../src/domain/ids.ts"
import { firstGenerationFrameId } from "../../src/engine/frame-hub.ts"
import { Generations } from "../../src/engine/generations.ts"
import { unpacedTicket } from "../../src/engine/pacer.ts"
import type { Frame } from "../../src/engine/sse-frames.ts"
import type { ThreadActors } from "../../src/engine/thread-actors.ts"
import {
  type EventListener,
  FirstByte,
  finish,
  makeAdapter,
  type ProviderAdapter,
  textDelta,
} from "../../src/providers/provider.ts"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { ReposLive } from "../support/store.ts"
import { GenerationsLayer, queueTurn } from "../support/turns.ts"

/**
 * How every generation ends: whatever its upstream, its bounds or the store do, each listener gets
 * exactly one terminal frame and the generation is freed.
 */

/** How many of the next final writes fail (as a database gone away would). */
let failingWrites = 0
const FlakyMessages = Layer.effect(
  MessagesRepo,
  Effect.map(MessagesRepo, (real) =>
    MessagesRepo.of({
      ...real,
      finishTurn: (message, outcome, owner) =>
        Effect.suspend(() =>
          failingWrites-- > 0
            ? Effect.fail(new StoreUnavailable({ message: "the test cut the store" }))
            : real.finishTurn(message, outcome, owner),
        ),
    }),
  ),
)

const TestLayer = GenerationsLayer.pipe(
  Layer.provide(FlakyMessages),
  Layer.provideMerge(ReposLive),
  Layer.provide(AppConfig.fromRecord({ GENERATION_MAX_MS: "300", GENERATION_MAX_BYTES: "2000" })),
)
const scope = Effect.runSync(Scope.make())
let context: Context.Context<Generations | MessagesRepo | ThreadsRepo | ThreadActors>
beforeAll(async () => {
  context = await Effect.runPromise(Layer.buildWithScope(TestLayer, scope))
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

const run = <A, E>(effect: Effect.Effect<A, E, Generations | MessagesRepo | ThreadsRepo | ThreadActors>) =>
  Effect.runPromise(Effect.provideContext(effect, context))

/** An adapter that plays `script` (each string a delta; then it finishes), or never finishes. */
const scripted = (
  script: (onEvent: EventListener) => Effect.Effect<void>,
  seen?: { interrupted: boolean },
): ProviderAdapter =>
  makeAdapter("mock", (_request, onEvent) =>
    script(onEvent).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          if (seen) seen.interrupted = true
        }),
      ),
    ),
  )

const replyOf = (texts: ReadonlyArray<string>) =>
  scripted((onEvent) =>
    Effect.sync(() => {
      onEvent(FirstByte)
      for (const text of texts) onEvent(textDelta(text))
      onEvent(finish("stop", { input_tokens: 1, output_tokens: texts.length }))
    }),
  )

/** Deltas of `text`, `everyMs` apart, for ever. */
const endless = (text: string, everyMs: number) => (onEvent: EventListener) =>
  Effect.gen(function* () {
    onEvent(FirstByte)
    for (;;) {
      onEvent(textDelta(text))
      yield* Effect.sleep(everyMs)
    }
  })

/** Stores a turn and runs `adapter` for it; returns what a listener got and how it ended. */
const turnWith = (adapter: ProviderAdapter) =>
  Effect.gen(function* () {
    const org = `org-${crypto.randomUUID()}` as OrgId
    const thread = yield* (yield* ThreadsRepo).create(org, null)
    const { requestId, turn } = yield* queueTurn(org, thread.thread_id, "hi", "scripted")
    const generations = yield* Generations
    const generation = yield* generations.start({
      org,
      ticket: unpacedTicket,
      requestId,
      adapter,
      startedAt: performance.now(),
      turn,
      request: { provider: "mock", model: "scripted", messages: [] },
    })
    const started = { assistantMessage: (yield* Deferred.await(turn.inserted)).assistantMessage }
    const frames = yield* generation.listen(requestId, firstGenerationFrameId - 1).pipe(Stream.runCollect)
    const outcome = yield* Deferred.await(generation.outcome)
    return { org, thread, started, frames, outcome, generation }
  })

const terminalOf = (frames: ReadonlyArray<Frame>) => {
  const terminals = frames.filter((f) => ["done", "error", "cancelled"].includes(f.type))
  expect(terminals).toHaveLength(1)
  expect(frames.at(-1)).toBe(terminals[0])
  return terminals[0]!
}

const storedReply = (org: OrgId, requestId: string) =>
  Effect.flatMap(MessagesRepo, (messages) => messages.findAssistantByRequest(org, requestId as never)).pipe(
    Effect.map((found) => Option.getOrThrow(found).message),
  )

describe("the final write", () => {
  it("is tried again when it fails once: the reply completes and is stored", async () => {
    failingWrites = 1
    const { frames, outcome, org, started } = await run(turnWith(replyOf(["a", "b"])))
    expect(terminalOf(frames).type).toBe("done")
    expect(outcome._tag).toBe("Completed")
    const stored = await run(storedReply(org, started.assistantMessage.request_id!))
    expect(stored).toMatchObject({ status: "complete", content: "ab" })
  })

  it("failing every time ends the generation with a retryable store_unavailable, then stores the reply as failed once the store answers", async () => {
    failingWrites = 1_000
    const { frames, outcome, org, started, generation } = await run(turnWith(replyOf(["kept ", "text"])))
    const terminal = terminalOf(frames)
    expect(terminal.type).toBe("error")
    expect(terminal.data).toMatchObject({ code: "store_unavailable", retryable: true })
    expect(outcome._tag).toBe("Failed")
    expect(generation.isEnded()).toBe(true)
    // What the client saw is in memory...
    expect(outcome.message).toMatchObject({
      status: "failed",
      content: "kept text",
      error_code: "store_unavailable",
    })
    // ... and reaches the store once it answers again (the repair runs once a second).
    failingWrites = 0
    await expect
      .poll(() => run(storedReply(org, started.assistantMessage.request_id!)), {
        timeout: 5_000,
        interval: 100,
      })
      .toMatchObject({ status: "failed", content: "kept text", error_code: "store_unavailable" })
  })
})

describe("a generation's bounds", () => {
  it("GENERATION_MAX_BYTES ends a reply that grows too large, keeping its text and aborting the upstream", async () => {
    const seen = { interrupted: false }
    const { frames, outcome, org, started } = await run(turnWith(scripted(endless("0123456789", 0), seen)))
    const terminal = terminalOf(frames)
    expect(terminal.data).toMatchObject({ code: "generation_too_large", retryable: false })
    expect(seen.interrupted).toBe(true)
    expect(outcome._tag).toBe("Failed")
    const stored = await run(storedReply(org, started.assistantMessage.request_id!))
    expect(stored.status).toBe("failed")
    expect(stored.error_code).toBe("generation_too_large")
    expect(stored.content).toBe("0123456789".repeat(200))
  })

  it("GENERATION_MAX_MS ends a reply that runs too long, keeping its text", async () => {
    const seen = { interrupted: false }
    const { frames, org, started } = await run(turnWith(scripted(endless("x", 100), seen)))
    expect(terminalOf(frames).data).toMatchObject({ code: "generation_timeout", retryable: false })
    expect(seen.interrupted).toBe(true)
    const stored = await run(storedReply(org, started.assistantMessage.request_id!))
    expect(stored).toMatchObject({ status: "failed", error_code: "generation_timeout" })
    expect(stored.content).toMatch(/^x+$/)
  })
})

describe("what the upstream hands over", () => {
  it("U+0000, which PostgreSQL text cannot hold, reaches listeners and the store as U+FFFD alike", async () => {
    const { frames, org, started } = await run(turnWith(replyOf(["a\u0000b", "\u0000"])))
    expect(terminalOf(frames).type).toBe("done")
    const deltas = frames.filter((f) => f.type === "delta").map((f) => f.data.text)
    expect(deltas).toEqual(["a\uFFFDb", "\uFFFD"])
    const stored = await run(storedReply(org, started.assistantMessage.request_id!))
    expect(stored).toMatchObject({ status: "complete", content: "a\uFFFDb\uFFFD" })
  })

  it("a defect in the upstream call ends the stream with an error (not a cancel) and settles the message", async () => {
    const broken = scripted((onEvent) =>
      Effect.sync(() => {
        onEvent(FirstByte)
        onEvent(textDelta("so far"))
        throw new Error("a bug in an adapter")
      }),
    )
    const { frames, org, started } = await run(turnWith(broken))
    expect(terminalOf(frames).data).toMatchObject({ code: "upstream_error" })
    const stored = await run(storedReply(org, started.assistantMessage.request_id!))
    expect(stored).toMatchObject({ status: "failed", content: "so far", error_code: "upstream_error" })
  })
})
