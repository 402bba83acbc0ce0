import { Effect, Exit } from "effect"
import type { Usage } from "../domain/thread.ts"
import type { StartedTurn, TurnInput, Turns } from "../engine/turns.ts"
import { type ListenerBody, subscribeBody } from "./listener-body.ts"
import {
  type CompletionHead,
  chunkFormat,
  doneBytes,
  roleChunk,
  sumUsage,
  usageChunk,
} from "./openai-chunks.ts"
import { WatchedBody } from "./watched-body.ts"

/**
 * `n` > 1 on `/v1/chat/completions`: n independent upstream calls, one turn (and generation) per
 * choice, run in parallel, each with its own pacer slot, and merged into one answer whose choices are
 * indexed 0..n-1. Why not the providers' own `n` (OpenAI `n`, Gemini `candidateCount`): a
 * generation carries one reply (one text, one set of tool calls, one finish), which its frame log,
 * its stored progress, the coalescer and the request log all rely on; n generations need none of
 * that changed, and every provider (Anthropic and Perplexity have no `n`) serves n choices the same
 * way. The cost is the provider's: each call reads the prompt again, so `prompt_tokens` is the sum
 * of the n calls' own (what they bill), as `completion_tokens` is.
 *
 * Each choice bypasses the coalescer (n identical calls must not share one upstream call), counts
 * against its key's limits as one request, and is one row of the request log. One choice failing
 * fails the request (the others are left, and their upstream calls aborted when nobody else
 * follows them); a client hanging up leaves them all.
 */

/**
 * The turn of choice `index`: never coalesced; an Idempotency-Key names each choice apart, so a
 * retry finds each of its choices again.
 */
const choiceInput = (input: TurnInput, index: number): TurnInput => ({
  ...input,
  coalesce: false,
  idempotencyKey: input.idempotencyKey === undefined ? undefined : `${input.idempotencyKey}#choice-${index}`,
})

const inputsOf = (input: TurnInput, n: number) =>
  Array.from({ length: n }, (_, index) => choiceInput(input, index))

/** Waits for every choice's whole reply; the first failure is the request's (the rest are left). */
export const completeChoices = (turns: Turns["Service"], input: TurnInput, n: number) =>
  Effect.forEach(inputsOf(input, n), turns.complete, { concurrency: "unbounded" })

/**
 * Starts every choice's turn: all of them, or (one refused: a full pacer queue, a key's limit)
 * none. Each start runs to its end uninterruptibly, so a started turn is never lost between its
 * start and this list, and every one started is left again when the rest fail or the request is
 * interrupted.
 */
export const startChoices = (turns: Turns["Service"], input: TurnInput, n: number) => {
  const started: Array<StartedTurn> = []
  return Effect.forEach(
    inputsOf(input, n),
    (choice, index) =>
      Effect.uninterruptible(
        Effect.tap(turns.start(choice), (turn) =>
          Effect.sync(() => {
            started[index] = turn
          }),
        ),
      ),
    { concurrency: "unbounded", discard: true },
  ).pipe(
    Effect.as(started as ReadonlyArray<StartedTurn>),
    Effect.onExit((exit) =>
      Exit.isSuccess(exit)
        ? Effect.void
        : Effect.forEach(
            started.filter((turn) => turn !== undefined),
            (turn) => {
              turn.record("detached")
              return turn.generation.detach(turn.requestId)
            },
            { discard: true },
          ),
    ),
  )
}

/**
 * The chunk stream of several choices: each choice's own listener body (its role chunk, its
 * chunks with its `index`, its finish chunk), merged as their bytes come; once every choice
 * finished, the usage chunk (summed) and `[DONE]`. A choice's error (or a client too slow for one,
 * or its cancel) ends the whole stream after that error chunk, and leaves the other choices. The merged body is
 * what the server pipes (its stalled-write watch applies); the choices' bodies pause while it is
 * full, so a slow client is dropped by their own `maxUnsentBytes` bound.
 */
export class ChoicesBody extends WatchedBody {
  private readonly parts: Array<ListenerBody> = []
  private readonly usages: Array<Usage | null> = []
  /** The choices whose finish chunk is out. */
  private readonly finished = new Set<number>()
  private readonly usageTail: (usage: Usage | null) => Uint8Array
  private open = 0
  /** The choice whose error (or slow client) ends the stream, once its error chunk is out. */
  private failed: { readonly index: number; readonly slow: boolean } | undefined
  private ended = false

  constructor(
    turns: ReadonlyArray<StartedTurn>,
    head: CompletionHead,
    includeUsage: boolean,
    stalledWriteMs: number,
  ) {
    super(stalledWriteMs)
    this.usageTail = includeUsage ? (usage) => usageChunk(head, usage) : () => new Uint8Array()
    for (const [index, turn] of turns.entries()) {
      const format = chunkFormat(
        head,
        index,
        (usage) => {
          this.usages[index] = usage
          this.finished.add(index)
          return new Uint8Array()
        },
        (slow) => {
          this.failed ??= { index, slow }
        },
      )
      const part = subscribeBody(
        turn.generation,
        turn.requestId,
        -1,
        format,
        [roleChunk(head, index)],
        turn.record,
        stalledWriteMs,
      )
      this.open++
      this.parts.push(part)
      part.on("data", (bytes: Uint8Array) => {
        if (!this.ended && !this.push(bytes)) for (const p of this.parts) p.pause()
      })
      part.once("end", () => this.partEnded(index))
      part.once("error", (error) => this.destroy(error))
    }
  }

  override _read() {
    for (const part of this.parts) if (part.isPaused()) part.resume()
  }

  private partEnded(index: number) {
    this.open--
    if (this.ended || this.destroyed) return
    const failed = this.failed
    // A choice that ended without its finish chunk (its error is out, or it was cancelled) ends
    // the answer: the other choices are left (their calls aborted). One whose error chunk is still
    // on its way is waited for.
    if (!this.finished.has(index) && (failed === undefined || failed.index === index)) {
      this.ended = true
      for (const part of this.parts) if (!part.readableEnded) part.destroy()
      this.push(null)
      if (failed?.slow === true) this.closeAfterFlush()
      return
    }
    if (this.open > 0 || failed !== undefined) return
    this.ended = true
    this.push(Buffer.concat([this.usageTail(sumUsage(this.usages)), doneBytes]))
    this.push(null)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    // A hang-up (or a stalled write): every choice's request leaves its generation.
    this.ended = true
    for (const part of this.parts) part.destroy()
    callback(error)
  }
}
