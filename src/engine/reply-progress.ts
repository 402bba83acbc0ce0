import { Clock, Context, Deferred, Effect, Exit, Layer } from "effect"
import { AppConfig } from "../config.ts"
import type { ToolCall } from "../domain/content.ts"
import type { MessageId } from "../domain/ids.ts"
import { MessagesRepo, type ReplyProgress as Progress } from "../store/messages-repo.ts"

/** New text that makes a reply's next write come before the tick. */
export const earlySaveBytes = 16 * 1024

/**
 * A reply as its generation grows it: the text in parts (appended in place, never copied per
 * token) and the stream id of the last delta among them.
 */
export interface GrowingReply {
  readonly parts: ReadonlyArray<string>
  readonly lastDeltaId: number | null
  /** Its tool calls so far (written whole whenever `version` moved). */
  readonly toolCalls?:
    | { readonly version: number; readonly result: () => ReadonlyArray<ToolCall> | undefined }
    | undefined
}

interface Tracked {
  readonly reply: GrowingReply
  /** How many parts the store has, and the id they reach. */
  savedParts: number
  savedEventId: number | null
  /** The version of the tool calls the store has. */
  savedCallsVersion: number
  /** A write of it failed without telling whether it landed: the next one writes the whole text. */
  uncertain: boolean
  renewedAt: number
  unsavedBytes: number
}

/**
 * Running replies in the store as they grow. One fiber writes, each `REPLY_SAVE_INTERVAL_MS` (or
 * as soon as a reply has 16 KB unsaved), every reply that grew, in one statement for all of them,
 * and renews the lease of every running reply a third of `REPLY_LEASE_MS` before it runs out. A
 * crash so leaves each reply with the text its clients had up to about one interval before, and a
 * lease that expires: the sweep (here, every lease period, and at start-up) marks only the replies
 * whose lease ran out `interrupted`, never another live process's.
 */
export class ReplyProgress extends Context.Service<
  ReplyProgress,
  {
    /**
     * Writes `reply` as it grows, under this process's lease, until `untrack`. The function it
     * returns is told the bytes of each new part: a write comes early once enough waits.
     */
    readonly track: (messageId: MessageId, reply: GrowingReply) => (bytes: number) => void
    readonly untrack: (messageId: MessageId) => void
  }
>()("dac/engine/ReplyProgress") {
  static readonly layer = Layer.effect(
    ReplyProgress,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const messages = yield* MessagesRepo
      const clock = yield* Clock.Clock
      const tracked = new Map<MessageId, Tracked>()
      const renewEveryMs = config.replyLeaseMs / 3
      let wake = Deferred.makeUnsafe<void>()
      let lastWarnedAt = Number.NEGATIVE_INFINITY
      /** The last write failed: no early write until a tick succeeds (no storm into a store that is down). */
      let failing = false

      const flush = Effect.gen(function* () {
        if (tracked.size === 0) return
        const now = clock.currentTimeMillisUnsafe()
        const batch: Array<[Tracked, Progress, number, number]> = []
        for (const [messageId, entry] of tracked) {
          const { parts, lastDeltaId } = entry.reply
          const grew = parts.length > entry.savedParts
          const callsVersion = entry.reply.toolCalls?.version ?? 0
          const callsMoved = callsVersion > entry.savedCallsVersion
          if (!grew && !callsMoved && now - entry.renewedAt < renewEveryMs) continue
          const upTo = parts.length
          batch.push([
            entry,
            {
              messageId,
              // Joined once a write: the parts since the last one (or all of them after a doubt).
              text: (entry.uncertain ? parts : parts.slice(entry.savedParts)).join(""),
              full: entry.uncertain,
              prevEventId: entry.savedEventId,
              eventId: grew ? lastDeltaId : null,
              // Written whole (never appended), so a write whose fate is unknown needs no care.
              toolCalls: callsMoved ? entry.reply.toolCalls?.result() : undefined,
            },
            upTo,
            callsVersion,
          ])
        }
        if (batch.length === 0) return
        const written = yield* Effect.exit(
          messages.saveProgress(
            config.replicaId,
            config.replyLeaseMs,
            batch.map(([, progress]) => progress),
          ),
        )
        failing = Exit.isFailure(written)
        if (Exit.isSuccess(written)) {
          // A reply left out (finished or swept meanwhile) is not written again either.
          for (const [entry, progress, upTo, callsVersion] of batch) {
            entry.savedParts = upTo
            entry.savedCallsVersion = callsVersion
            entry.unsavedBytes = 0
            if (progress.eventId !== null) entry.savedEventId = progress.eventId
            entry.uncertain = false
            entry.renewedAt = now
          }
          return
        }
        for (const [entry] of batch) entry.uncertain = true
        if (now - lastWarnedAt > 10_000) {
          lastWarnedAt = now
          yield* Effect.logWarning("could not write the text of running replies; trying again", {
            replies: batch.length,
          })
        }
      })

      const tick = Effect.raceFirst(
        Effect.sleep(config.replySaveIntervalMs),
        Effect.suspend(() => Deferred.await(wake)),
      ).pipe(
        Effect.andThen(
          Effect.sync(() => {
            wake = Deferred.makeUnsafe<void>()
          }),
        ),
        Effect.andThen(flush),
      )
      yield* Effect.forkScoped(Effect.forever(tick))

      // Replies of a process that died stay `streaming` until their lease runs out; then this marks
      // them (every replica sweeps: the statement is the same and marking twice changes nothing).
      const sweep = Effect.sleep(config.replyLeaseMs).pipe(
        Effect.andThen(messages.sweepInterrupted()),
        Effect.tap((count) =>
          count > 0
            ? Effect.logWarning("marked interrupted replies whose owner's lease ran out", { count })
            : Effect.void,
        ),
        Effect.catch(() => Effect.void),
      )
      yield* Effect.forkScoped(Effect.forever(sweep))

      return ReplyProgress.of({
        track: (messageId, reply) => {
          const entry: Tracked = {
            reply,
            savedParts: 0,
            savedEventId: null,
            savedCallsVersion: 0,
            uncertain: false,
            // Just written with its lease by the insert.
            renewedAt: clock.currentTimeMillisUnsafe(),
            unsavedBytes: 0,
          }
          tracked.set(messageId, entry)
          return (bytes) => {
            entry.unsavedBytes += bytes
            if (entry.unsavedBytes >= earlySaveBytes && !failing) Deferred.doneUnsafe(wake, Exit.void)
          }
        },
        untrack: (messageId) => {
          tracked.delete(messageId)
        },
      })
    }),
  )
}
