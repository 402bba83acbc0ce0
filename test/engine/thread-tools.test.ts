import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../../src/config.ts"
import type { OrgId, ThreadId } from "../../src/domain/ids.ts"
import { ThreadActors } from "../../src/engine/thread-actors.ts"
import { type TurnInput, Turns } from "../../src/engine/turns.ts"
import { engineServices } from "../../src/layers.ts"
import {
  type ChatMessage,
  FirstByte,
  finish,
  makeAdapter,
  textDelta,
  toolCallDelta,
} from "../../src/providers/provider.ts"
import { Providers } from "../../src/providers/providers.ts"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { ReposLive } from "../support/store.ts"

/**
 * A thread's conversation with tool calls (a provider extra included) and results and an image, as
 * the thread actor keeps it in memory and as the store gives it back: the same, message for message.
 */

const sent: Array<ReadonlyArray<ChatMessage>> = []
const scripted = makeAdapter("gemini", (request, onEvent) =>
  Effect.sync(() => {
    sent.push(request.messages)
    onEvent(FirstByte)
    if (request.messages.at(-1)?.role === "tool") onEvent(textDelta("done with tools"))
    else {
      onEvent(textDelta("Calling. "))
      onEvent(
        toolCallDelta(0, '{"city":', { id: "call_a", name: "weather", extra: { thoughtSignature: "c2ln" } }),
      )
      onEvent(toolCallDelta(0, '"Paris"}'))
      onEvent(toolCallDelta(1, "", { id: "call_b", name: "time" }))
    }
    onEvent(finish(request.messages.at(-1)?.role === "tool" ? "stop" : "tool_calls", null))
  }),
)

const TestLayer = engineServices(Providers.layerScripted(scripted)).pipe(
  Layer.provideMerge(ReposLive),
  Layer.provide(AppConfig.fromRecord({})),
)

const org = `org-${crypto.randomUUID()}` as OrgId
const turn = (threadId: ThreadId, messages: ReadonlyArray<ChatMessage>): TurnInput => ({
  org,
  threadId,
  mode: "wait",
  messages,
  options: { tools: [{ name: "weather" }, { name: "time" }] },
  body: { role: "user", content: "", provider: "gemini", model: "gemini-3-pro-preview" },
})

layer(TestLayer, { excludeTestServices: true })("a thread's structured conversation", (it) => {
  it.effect("is the same in memory and reloaded from the store", () =>
    Effect.gen(function* () {
      const turns = yield* Turns
      const thread = yield* turns.createThread(org, null)
      const image: ChatMessage = {
        role: "user",
        content: [
          { type: "text", text: "see" },
          { type: "image_url", url: "https://example.com/a.png", detail: "high" },
        ],
      }
      const first = yield* turns.send(turn(thread.thread_id, [image]))
      expect(first.coalesce).toBe("bypass")
      expect(first.assistant_message.tool_calls).toEqual([
        { id: "call_a", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
        { id: "call_b", type: "function", function: { name: "time", arguments: "{}" } },
      ])
      const results: ReadonlyArray<ChatMessage> = [
        { role: "tool", content: "sunny", toolCallId: "call_a" },
        { role: "tool", content: "noon", toolCallId: "call_b" },
      ]
      const second = yield* turns.send(turn(thread.thread_id, results))
      expect(second.tool_messages?.map((m) => m.tool_call_id)).toEqual(["call_a", "call_b"])
      expect(second.assistant_message.content).toBe("done with tools")

      const actor = yield* (yield* ThreadActors).enter(org, thread.thread_id)
      const inMemory = actor.conversation()
      const reloaded = yield* (yield* MessagesRepo).loadThread(org, thread.thread_id)
      expect(Option.getOrThrow(reloaded).history).toEqual(inMemory)
      expect(inMemory).toEqual([
        image,
        {
          role: "assistant",
          content: "Calling. ",
          toolCalls: [
            {
              id: "call_a",
              name: "weather",
              arguments: '{"city":"Paris"}',
              extra: { thoughtSignature: "c2ln" },
            },
            { id: "call_b", name: "time", arguments: "{}" },
          ],
        },
        ...results,
        { role: "assistant", content: "done with tools" },
      ])
      // What went upstream for the results: the conversation so far, as kept.
      expect(sent.at(-1)).toEqual(inMemory.slice(0, 4))
    }),
  )
})
