import { Context, Duration, Effect, Layer, Schedule, Semaphore } from "effect"
import { type RequestLogEntry, RequestLogRepo } from "../store/request-log-repo.ts"
import { recordRequestMetrics } from "./metrics.ts"

/** How many finished requests the in-memory window keeps for the performance summary. */
const windowSize = 10_000
/** Rows are written in batches of at most this many, at least every `flushEveryMs`. */
const batchSize = 500
const flushEveryMs = 500

/** How the log rides out a database that is away; `RequestLog.layer` uses `defaultOutagePolicy`. */
export interface OutagePolicy {
  /** A batch that keeps failing is retried at every flush for this long, then dropped (with a warning). */
  readonly retryForMs: number
  /** At most this many entries wait for the database; beyond it new ones are not queued (counted, warned). */
  readonly maxBacklog: number
  /** One batch's write that takes longer (a database that hangs rather than refuses) counts as failed. */
  readonly writeTimeoutMs: number
}

export const defaultOutagePolicy: OutagePolicy = {
  retryForMs: 60_000,
  maxBacklog: 20 * batchSize,
  writeTimeoutMs: 10_000,
}

/** A batch waiting to be written, and since when it has been failing. */
interface Batch {
  readonly entries: ReadonlyArray<RequestLogEntry>
  failingSince: number | undefined
}

/**
 * Every request is recorded once, here. Recording is synchronous and allocation-light (no I/O on
 * the reply path); rows reach the database in batches from a background fiber.
 */
export class RequestLog extends Context.Service<
  RequestLog,
  {
    readonly record: (entry: RequestLogEntry) => void
    /** The entries recorded at or after `fromMs` (epoch ms) still in the window, oldest first, with when. */
    readonly since: (
      fromMs: number,
    ) => ReadonlyArray<{ readonly at: number; readonly entry: RequestLogEntry }>
    /** The newest `n` entries that pass `keep` (all by default), newest last. */
    readonly lastN: (n: number, keep?: (entry: RequestLogEntry) => boolean) => ReadonlyArray<RequestLogEntry>
    /**
     * Writes what is pending now (also runs on a timer and at shutdown). Never fails: a batch the
     * database does not take stays queued for the next flush, within the outage policy.
     */
    readonly flush: Effect.Effect<void>
    /** Entries waiting for the database now (pending and failed batches). */
    readonly backlog: () => number
  }
>()("dac/telemetry/RequestLog") {
  /**
   * A database outage must neither stop the replies nor let the log grow without bound: failed
   * batches are kept and retried for `retryForMs`, then dropped; the queue holds `maxBacklog`
   * entries at most. A row written twice (a timed-out write that did land) is ignored by the
   * insert's `ON CONFLICT DO NOTHING`.
   */
  static readonly layerWith = (policy: OutagePolicy) =>
    Layer.effect(
      RequestLog,
      Effect.gen(function* () {
        const repo = yield* RequestLogRepo
        const context = yield* Effect.context<never>()
        const ring: Array<RequestLogEntry | undefined> = new Array(windowSize)
        const times = new Float64Array(windowSize) // when each ring entry was recorded (epoch ms)
        let written = 0
        let pending: Array<RequestLogEntry> = []
        const batches: Array<Batch> = []
        let queued = 0 // entries in `batches`
        let refused = 0 // entries not queued since the last warning: the backlog was full
        let failing = false // the last write failed: warn once per outage, not every half second

        const record = (entry: RequestLogEntry) => {
          recordRequestMetrics(entry, context)
          ring[written % windowSize] = entry
          times[written % windowSize] = Date.now()
          written++
          if (pending.length + queued >= policy.maxBacklog) refused++
          else pending.push(entry)
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

        const since = (fromMs: number) => {
          const out: Array<{ at: number; entry: RequestLogEntry }> = []
          const oldest = Math.max(0, written - windowSize)
          for (let i = written - 1; i >= oldest; i--) {
            const at = times[i % windowSize]!
            if (at < fromMs) break
            out.push({ at, entry: ring[i % windowSize]! })
          }
          return out.reverse()
        }

        /** Writes the oldest batch; true when it left the queue (written, or dropped at last). */
        const write = (batch: Batch) =>
          repo.insertMany(batch.entries).pipe(
            Effect.timeout(Duration.millis(policy.writeTimeoutMs)),
            Effect.as(true),
            Effect.catchCause((cause) =>
              Effect.gen(function* () {
                batch.failingSince ??= Date.now()
                if (!failing) yield* Effect.logWarning("request log write failed; retrying", cause)
                failing = true
                if (Date.now() - batch.failingSince < policy.retryForMs) return false
                yield* Effect.logWarning(
                  `request log: dropped a batch of ${batch.entries.length} entries after ${policy.retryForMs} ms of failed writes`,
                )
                return true
              }),
            ),
            Effect.tap((left) =>
              Effect.sync(() => {
                if (!left) return
                batches.shift()
                queued -= batch.entries.length
              }),
            ),
          )

        const flushNow = Effect.gen(function* () {
          for (let i = 0; i < pending.length; i += batchSize) {
            const entries = pending.slice(i, i + batchSize)
            batches.push({ entries, failingSince: undefined })
            queued += entries.length
          }
          pending = []
          if (refused > 0) {
            yield* Effect.logWarning(`request log: ${refused} entries not stored, the backlog was full`)
            refused = 0
          }
          // Oldest first; the first that fails ends this flush (the database is likely away).
          while (batches.length > 0) {
            if (!(yield* write(batches[0]!))) return
          }
          if (failing) yield* Effect.logInfo("request log writes resumed")
          failing = false
        })

        // One flush at a time: the timer's, a caller's and the shutdown's share the queue.
        const lock = yield* Semaphore.make(1)
        const flush = lock.withPermit(flushNow).pipe(Effect.withSpan("RequestLog.flush"))

        yield* flush.pipe(Effect.repeat(Schedule.spaced(flushEveryMs)), Effect.forkScoped)
        yield* Effect.addFinalizer(() => flush)

        return RequestLog.of({ record, since, lastN, flush, backlog: () => pending.length + queued })
      }),
    )

  static readonly layer = RequestLog.layerWith(defaultOutagePolicy)
}
