import { Context, Effect, Layer, Schedule } from "effect"
import type { StoreUnavailable } from "../domain/errors.ts"
import { type RequestLogEntry, RequestLogRepo } from "../store/request-log-repo.ts"
import { recordRequestMetrics } from "./metrics.ts"

/** How many finished requests the in-memory window keeps for the performance summary. */
const windowSize = 10_000
/** Rows are written in batches of at most this many, at least every `flushEveryMs`. */
const batchSize = 500
const flushEveryMs = 500

/**
 * Every request is recorded once, here. Recording is synchronous and allocation-light (no I/O on
 * the reply path); rows reach the database in batches from a background fiber.
 */
export class RequestLog extends Context.Service<
  RequestLog,
  {
    readonly record: (entry: RequestLogEntry) => void
    /** The newest `n` entries that pass `keep` (all by default), newest last. */
    readonly lastN: (n: number, keep?: (entry: RequestLogEntry) => boolean) => ReadonlyArray<RequestLogEntry>
    /** Writes what is pending now (also runs on a timer and at shutdown). */
    readonly flush: Effect.Effect<void, StoreUnavailable>
  }
>()("dac/telemetry/RequestLog") {
  static readonly layer = Layer.effect(
    RequestLog,
    Effect.gen(function* () {
      const repo = yield* RequestLogRepo
      const context = yield* Effect.context<never>()
      const ring: Array<RequestLogEntry | undefined> = new Array(windowSize)
      let written = 0
      let pending: Array<RequestLogEntry> = []

      const record = (entry: RequestLogEntry) => {
        recordRequestMetrics(entry, context)
        ring[written % windowSize] = entry
        written++
        pending.push(entry)
      }

      const lastN = (n: number, keep?: (entry: RequestLogEntry) => boolean) => {
        const out: Array<RequestLogEntry> = []
        const oldest = Math.max(0, written - windowSize)
        for (let i = written - 1; i >= oldest && out.length < n; i--) {
          const entry = ring[i % windowSize]!
          if (keep === undefined || keep(entry)) out.push(entry)
        }
        return out.reverse()
      }

      const flush = Effect.suspend(() => {
        if (pending.length === 0) return Effect.void
        const batch = pending
        pending = []
        const chunks: Array<Array<RequestLogEntry>> = []
        for (let i = 0; i < batch.length; i += batchSize) chunks.push(batch.slice(i, i + batchSize))
        return Effect.forEach(chunks, repo.insertMany, { discard: true })
      }).pipe(Effect.withSpan("RequestLog.flush"))

      // A failed write (database away) loses that batch but never stops the timer or a reply.
      const flushSafely = flush.pipe(
        Effect.catchCause((cause) => Effect.logWarning("request log flush failed", cause)),
      )
      yield* flushSafely.pipe(Effect.repeat(Schedule.spaced(flushEveryMs)), Effect.forkScoped)
      yield* Effect.addFinalizer(() => flushSafely)

      return RequestLog.of({ record, lastN, flush })
    }),
  )
}
