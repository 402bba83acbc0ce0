import { performance } from "node:perf_hooks"
import { expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { afterAll, beforeAll, beforeEach, describe } from "vitest"
import {
  type FakeProvider,
  type FakeUpstream,
  type Reply,
  startFakeUpstream,
} from "../support/fake-upstream.ts"
import { bodyText, loadTranscript } from "../support/wire.ts"
import { adapterFor, requestFor } from "./harness.ts"

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeUpstream()
})
afterAll(() => fake.close())
beforeEach(() => fake.reset())

/**
 * Starts a stream in its own fiber, waits until it emitted `after` (the first text, or FirstByte),
 * interrupts it, and returns how long the upstream socket took to close after the interrupt.
 */
const interruptLatency = (
  provider: FakeProvider,
  reply: Reply,
  after: "TextDelta" | "FirstByte" | "nothing",
) =>
  Effect.gen(function* () {
    fake.on(provider, reply)
    const adapter = yield* adapterFor(fake, provider)
    const reached = yield* Deferred.make<void>()
    const fiber = yield* adapter.stream(requestFor(provider)).pipe(
      Stream.runForEach((event) =>
        event._tag === after ? Deferred.succeed(reached, undefined) : Effect.void,
      ),
      Effect.forkChild,
    )
    if (after === "nothing") {
      while (fake.calls(provider).length === 0) yield* Effect.sleep(5)
    } else {
      yield* Deferred.await(reached).pipe(Effect.timeout(2_000))
    }
    const call = fake.calls(provider).at(-1)!
    const interruptedAt = performance.now()
    yield* Fiber.interrupt(fiber)
    const closedAt = yield* Effect.promise(() => fake.socketClosedAt(call, 2_000))
    return closedAt - interruptedAt
  })

const stalled = (transcript: string, bytes: number): Reply => ({ transcript, hangAfterBytes: bytes })

/** Stalls right after the event holding `marker` (so its text was sent), before the rest of the body. */
const stalledAfter = (transcript: string, marker: string): Reply => {
  const body = bodyText(loadTranscript(transcript))
  const at = body.indexOf(marker)
  expect(at).toBeGreaterThan(0)
  const blank = /\r?\n\r?\n/.exec(body.slice(at))!
  const end = at + blank.index + blank[0].length
  return stalled(transcript, new TextEncoder().encode(body.slice(0, end)).length)
}

describe("interrupting the consumer aborts the upstream request", () => {
  it.live("mid-stream: the socket closes within milliseconds (measured over 20 runs)", () =>
    Effect.gen(function* () {
      const latencies: Array<number> = []
      for (let i = 0; i < 20; i++) {
        // Headers and the first events, then the fake stalls with the connection open.
        latencies.push(
          yield* interruptLatency("openai", stalledAfter("openai-chat-stream", '"The"'), "TextDelta"),
        )
      }
      latencies.sort((a, b) => a - b)
      const p50 = latencies[Math.floor(latencies.length / 2)]!
      const max = latencies.at(-1)!
      console.log(
        `interrupt → upstream socket close: p50 ${p50.toFixed(2)} ms, max ${max.toFixed(2)} ms over ${latencies.length} runs`,
      )
      expect(max).toBeLessThan(100)
    }),
  )

  it.live("for every protocol", () =>
    Effect.gen(function* () {
      const cases = [
        ["anthropic", "anthropic-messages-stream", "text_delta"],
        ["gemini", "gemini-stream", '"The"'],
        ["perplexity", "perplexity-stream", '"The"'],
        ["openrouter", "openrouter-stream", '"Hello!"'],
      ] as const
      for (const [provider, transcript, marker] of cases) {
        expect(yield* interruptLatency(provider, stalledAfter(transcript, marker), "TextDelta")).toBeLessThan(
          100,
        )
      }
    }),
  )

  it.live("before the first byte (headers sent, body not started)", () =>
    Effect.gen(function* () {
      expect(
        yield* interruptLatency("anthropic", stalled("anthropic-messages-stream", 0), "nothing"),
      ).toBeLessThan(100)
    }),
  )

  it.live("before the response headers", () =>
    Effect.gen(function* () {
      const reply = { transcript: "gemini-stream", hangBeforeHeaders: true }
      expect(yield* interruptLatency("gemini", reply, "nothing")).toBeLessThan(100)
    }),
  )
})

describe("timeouts abort the upstream request too", () => {
  it.live("an idle timeout closes the stalled socket", () =>
    Effect.gen(function* () {
      fake.on("openai", stalledAfter("openai-chat-stream", '"The"'))
      const adapter = yield* adapterFor(fake, "openai", { idleMs: 100 })
      const exit = yield* Effect.exit(Stream.runDrain(adapter.stream(requestFor("openai"))))
      expect(exit._tag).toBe("Failure")
      yield* Effect.promise(() => fake.socketClosedAt(fake.calls("openai")[0]!, 1_000))
    }),
  )
})

describe("a completed stream keeps its connection", () => {
  it.live("the socket stays open in the pool after the reply ended", () =>
    Effect.gen(function* () {
      const adapter = yield* adapterFor(fake, "anthropic")
      yield* Stream.runDrain(adapter.stream(requestFor("anthropic")))
      const call = fake.calls("anthropic")[0]!
      const closed = yield* Effect.promise(() =>
        fake.socketClosedAt(call, 200).then(
          () => true,
          () => false,
        ),
      )
      expect(closed).toBe(false)
    }),
  )
})
