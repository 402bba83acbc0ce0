import { Effect, Layer } from "effect"
import type { OrgId, ThreadId } from "../../src/domain/ids.ts"
import { newMessageId, newRequestId } from "../../src/domain/ids.ts"
import { Generations } from "../../src/engine/generations.ts"
import { GenerationRelay } from "../../src/engine/relay.ts"
import { ReplyProgress } from "../../src/engine/reply-progress.ts"
import { ThreadActors } from "../../src/engine/thread-actors.ts"
import { ThreadLocks } from "../../src/engine/thread-locks.ts"

/** Generations with what they run on (thread actors, the reply writer), over repositories and config given later. */
export const GenerationsLayer = Generations.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      ThreadActors.layer,
      ReplyProgress.layer,
      GenerationRelay.layerLocal,
      ThreadLocks.layerLocal,
    ),
  ),
)

/** A thread turn queued on its thread's actor, as `Turns.start` queues one (for tests of what runs behind it). */
export const queueTurn = (org: OrgId, threadId: ThreadId, content: string, model = "faststream-ttft") =>
  Effect.gen(function* () {
    const actor = yield* (yield* ThreadActors).enter(org, threadId)
    const requestId = newRequestId()
    const turn = actor.enqueue({
      requestId,
      messages: [{ role: "user", content }],
      provider: "mock",
      model,
      userMessageId: newMessageId(),
      assistantMessageId: newMessageId(),
    })
    return { requestId, turn }
  })
