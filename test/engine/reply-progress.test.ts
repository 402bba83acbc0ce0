import { expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { describe } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { StoreUnavailable } from "../../src/domain/errors.ts"
import { type MessageId, newMessageId } from "../../src/domain/ids.ts"
import { ReplyProgress } from "../../src/engine/reply-progress.ts"
import { MessagesRepo, type ReplyProgress as Progress } from "../../src/store/messages-repo.ts"

/**
 * The writer of growing replies on Effect's clock (TestClock: no sleeping): what it writes each
 * tick, the lease renewals, the early write at 16 KB, and the whole text after a failed write.
 */

const writes: Array<ReadonlyArray<Progress>> = []
let failNext = 0

// Only the calls the writer makes are real; the rest of the repository is never reached here.
const RecordingMessages = Layer.succeed(
  MessagesRepo,
  MessagesRepo.of({
    saveProgress: (_owner, _leaseMs, progress) =>
      Effect.suspend(() => {
        writes.push(progress)
        return failNext-- > 0
          ? Effect.fail(new StoreUnavailable({ message: "the test cut the store" }))
          : Effect.succeed(progress.map((p) => p.messageId))
      }),
    sweepInterrupted: () => Effect.succeed(0),
    loadThread: () => Effect.succeed(Option.none()),
    insertTurn: () => Effect.die("unused"),
    finishTurn: () => Effect.die("unused"),
    listByThread: () => Effect.succeed([]),
    findAssistantByRequest: () => Effect.succeed(Option.none()),
  }),
)

const TestLayer = ReplyProgress.layer.pipe(
  Layer.provide(RecordingMessages),
  Layer.provide(
    AppConfig.fromRecord({ REPLY_SAVE_INTERVAL_MS: "250", REPLY_LEASE_MS: "3000", REPLICA_ID: "me" }),
  ),
)

const growing = () => ({ parts: [] as Array<string>, lastDeltaId: null as number | null })
const add = (reply: ReturnType<typeof growing>, text: string, id: number, grew: (bytes: number) => void) => {
  reply.parts.push(text)
  reply.lastDeltaId = id
  grew(Buffer.byteLength(text))
}

describe("ReplyProgress", () => {
  it.effect(
    "writes what grew each tick, in one statement for all replies, appending after the last write",
    () =>
      Effect.gen(function* () {
        writes.length = 0
        const progress = yield* ReplyProgress
        const [a, b] = [growing(), growing()]
        const [idA, idB]: Array<MessageId> = [newMessageId(), newMessageId()]
        const grewA = progress.track(idA, a)
        const grewB = progress.track(idB, b)
        add(a, "Hel", 3, grewA)
        add(b, "Wor", 3, grewB)
        yield* TestClock.adjust(100)
        expect(writes).toHaveLength(0)
        yield* TestClock.adjust(150)
        expect(writes).toHaveLength(1)
        expect(writes[0]).toEqual([
          { messageId: idA, text: "Hel", full: false, prevEventId: null, eventId: 3 },
          { messageId: idB, text: "Wor", full: false, prevEventId: null, eventId: 3 },
        ])
        add(a, "lo", 4, grewA)
        yield* TestClock.adjust(250)
        // Only what grew; the other's lease is not due yet.
        expect(writes[1]).toEqual([{ messageId: idA, text: "lo", full: false, prevEventId: 3, eventId: 4 }])
        // Nothing grew: no write until a lease is a third of the way to running out (1 s).
        yield* TestClock.adjust(500)
        expect(writes).toHaveLength(2)
        yield* TestClock.adjust(1000)
        // Each lease renewed once, in a write with no text, a third of a lease after its last write.
        const renewals = writes.slice(2).flat()
        expect(renewals.map((p) => [p.messageId, p.text, p.eventId]).sort()).toEqual(
          [
            [idA, "", null],
            [idB, "", null],
          ].sort(),
        )
        progress.untrack(idA)
        progress.untrack(idB)
      }).pipe(Effect.provide(TestLayer)),
  )

  it.effect("writes at once when 16 KB wait, and the whole text after a write that failed", () =>
    Effect.gen(function* () {
      writes.length = 0
      const progress = yield* ReplyProgress
      const reply = growing()
      const id = newMessageId()
      const grew = progress.track(id, reply)
      add(reply, "x".repeat(10_000), 3, grew)
      yield* TestClock.adjust(1)
      expect(writes).toHaveLength(0)
      add(reply, "y".repeat(7_000), 4, grew)
      // Before the tick: the early write.
      yield* TestClock.adjust(1)
      expect(writes).toHaveLength(1)
      expect(writes[0]![0]!.text.length).toBe(17_000)

      failNext = 1
      add(reply, "z", 5, grew)
      yield* TestClock.adjust(250)
      expect(writes).toHaveLength(2)
      add(reply, "!", 6, grew)
      yield* TestClock.adjust(250)
      // The failed write may or may not have landed: the next one carries the whole text.
      expect(writes[2]).toEqual([
        { messageId: id, text: reply.parts.join(""), full: true, prevEventId: 4, eventId: 6 },
      ])
      progress.untrack(id)
    }).pipe(Effect.provide(TestLayer)),
  )
})
