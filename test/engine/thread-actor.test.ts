import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { AppConfig } from "../../src/config.ts"
import type { OrgId, ThreadId } from "../../src/domain/ids.ts"
import { type TurnInput, Turns } from "../../src/engine/turns.ts"
import { engineServices } from "../../src/layers.ts"
import { type ChatMessage, FirstByte, finish, makeAdapter, textDelta } from "../../src/providers/provider.ts"
import { Providers } from "../../src/providers/providers.ts"
import { ReposLive } from "../support/store.ts"

/**
 * The thread actor behind `Turns`, with a scripted provider: each upstream call is recorded with
 * the conversation it was sent, and answers only when the test opens its gate.
 */

interface Call {
  readonly messages: ReadonlyArray<ChatMessage>
  readonly gate: Deferred.Deferred<void>
}
const calls: Array<Call> = []

const scripted = makeAdapter("openai", (request, onEvent) =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    calls.push({ messages: request.messages, gate })
    yield* Deferred.await(gate)
    onEvent(FirstByte)
    onEvent(textDelta(`re: ${request.messages.at(-1)?.content}`))
    onEvent(finish("stop", { input_tokens: 1, output_tokens: 1 }))
  }),
)

const TestLayer = engineServices(Providers.layerScripted(scripted)).pipe(
  Layer.provideMerge(ReposLive),
  // No repeat window: the same words right after a reply are a new turn.
  Layer.provide(AppConfig.fromRecord({ COALESCE_REPEAT_WINDOW_MS: "0" })),
)

const org = `org-${crypto.randomUUID()}` as OrgId
const turnOn = (threadId: ThreadId, content: string): TurnInput => ({
  org,
  threadId,
  mode: "wait",
  body: { role: "user", content, provider: "openai", model: "gpt-4o-mini" },
})

/** Waits until the scripted provider got `n` calls. */
const callsReach = (n: number) =>
  Effect.gen(function* () {
    while (calls.length < n) yield* Effect.sleep(2)
  })

// Real time: the sends race each other over the real store.
layer(TestLayer, { excludeTestServices: true })("the thread actor behind Turns", (it) => {
  it.effect("runs a thread's turns one at a time, in arrival order, each with the replies before it", () =>
    Effect.gen(function* () {
      calls.length = 0
      const turns = yield* Turns
      const thread = yield* turns.createThread(org, null)
      const first = yield* Effect.forkChild(turns.send(turnOn(thread.thread_id, "one")))
      yield* callsReach(1)
      const second = yield* Effect.forkChild(turns.send(turnOn(thread.thread_id, "two")))
      const third = yield* Effect.forkChild(turns.send(turnOn(thread.thread_id, "three")))
      yield* Effect.sleep(30)
      // The later ones wait for the running one: no upstream call for them yet.
      expect(calls).toHaveLength(1)
      yield* Deferred.succeed(calls[0]!.gate, undefined)
      expect((yield* Fiber.join(first)).assistant_message.content).toBe("re: one")
      yield* callsReach(2)
      expect(calls[1]!.messages).toEqual([
        { role: "user", content: "one" },
        { role: "assistant", content: "re: one" },
        { role: "user", content: "two" },
      ])
      yield* Deferred.succeed(calls[1]!.gate, undefined)
      yield* callsReach(3)
      expect(calls[2]!.messages.map((m) => m.content)).toEqual(["one", "re: one", "two", "re: two", "three"])
      yield* Deferred.succeed(calls[2]!.gate, undefined)
      const [two, three] = [yield* Fiber.join(second), yield* Fiber.join(third)]
      expect([two.coalesce, three.coalesce]).toEqual(["leader", "leader"])
      expect(three.assistant_message.content).toBe("re: three")
    }),
  )

  it.effect(
    "shares one turn among identical sends while it runs; the same words after the reply are a new turn",
    () =>
      Effect.gen(function* () {
        calls.length = 0
        const turns = yield* Turns
        const thread = yield* turns.createThread(org, null)
        const sends = yield* Effect.forkChild(
          Effect.all(
            Array.from({ length: 20 }, () => turns.send(turnOn(thread.thread_id, "continue"))),
            { concurrency: "unbounded" },
          ),
        )
        yield* callsReach(1)
        yield* Effect.sleep(20)
        yield* Deferred.succeed(calls[0]!.gate, undefined)
        const results = yield* Fiber.join(sends)
        expect(calls).toHaveLength(1)
        expect(results.filter((r) => r.coalesce === "leader")).toHaveLength(1)
        expect(new Set(results.map((r) => r.assistant_message.message_id)).size).toBe(1)

        const again = yield* Effect.forkChild(turns.send(turnOn(thread.thread_id, "continue")))
        yield* callsReach(2)
        yield* Deferred.succeed(calls[1]!.gate, undefined)
        const repeat = yield* Fiber.join(again)
        expect(repeat.coalesce).toBe("leader")
        expect(repeat.assistant_message.message_id).not.toBe(results[0]!.assistant_message.message_id)
        expect(calls[1]!.messages.map((m) => m.content)).toEqual(["continue", "re: continue", "continue"])
      }),
  )

  it.effect("a thread of another org is not found, and nothing is sent", () =>
    Effect.gen(function* () {
      calls.length = 0
      const turns = yield* Turns
      const thread = yield* turns.createThread(org, null)
      const error = yield* Effect.flip(
        turns.send({ ...turnOn(thread.thread_id, "mine?"), org: `org-${crypto.randomUUID()}` as OrgId }),
      )
      expect(error._tag).toBe("ThreadNotFound")
      expect(calls).toHaveLength(0)
    }),
  )
})
