import { Clock, Effect } from "effect"

/**
 * Delayed callbacks that all share one timer. The engine forgets things after a fixed time (a
 * finished generation after its retention, a coalescing key after its TTL): at hundreds of
 * requests per second a sleeping fiber or a Node timer per item costs far more than the work.
 *
 * Each caller uses a handful of fixed delays, so the entries of one delay fall due in the order
 * they were added: one FIFO per delay keeps `after` O(1) and the timer only ever looks at heads.
 */
export interface Deadlines {
  /** Runs `run` once, `delayMs` from now (0 or less: at once). */
  readonly after: (delayMs: number, run: () => void) => void
  /** How many callbacks are waiting. */
  readonly size: () => number
  /** Drops every waiting callback and the timer (shutdown). */
  readonly clear: () => void
}

interface Entry {
  readonly due: number
  readonly run: () => void
}

/** A FIFO without `shift()`'s O(n): a head index, compacted once half the array is spent. */
class Fifo {
  private items: Array<Entry> = []
  private head = 0
  get size() {
    return this.items.length - this.head
  }
  push(entry: Entry) {
    this.items.push(entry)
  }
  peek(): Entry | undefined {
    return this.items[this.head]
  }
  shift(): Entry | undefined {
    const entry = this.items[this.head]
    if (entry === undefined) return undefined
    this.items[this.head++] = undefined as unknown as Entry
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return entry
  }
}

/** Runs `run` once, `ms` from now; the function it returns cancels that. */
export type Schedule = (ms: number, run: () => void) => () => void

/** Node's timer, never keeping the process alive. */
const nodeSchedule: Schedule = (ms, run) => {
  const timer = setTimeout(run, ms)
  timer.unref?.()
  return () => clearTimeout(timer)
}

/**
 * `now` and `startTimer` are injectable: tests pass a clock of their own, and the engine's layers
 * Effect's `Clock` (`clockDeadlines`), so a TTL's test runs on `TestClock` instead of sleeping.
 */
export const makeDeadlines = (
  now: () => number = () => performance.now(),
  startTimer: Schedule = nodeSchedule,
): Deadlines => {
  const byDelay = new Map<number, Fifo>()
  let cancelTimer: (() => void) | undefined
  let timerDue = Number.POSITIVE_INFINITY
  let waiting = 0

  const schedule = () => {
    let earliest = Number.POSITIVE_INFINITY
    for (const fifo of byDelay.values()) {
      const head = fifo.peek()
      if (head !== undefined && head.due < earliest) earliest = head.due
    }
    if (earliest === timerDue) return
    cancelTimer?.()
    cancelTimer = undefined
    timerDue = earliest
    if (earliest === Number.POSITIVE_INFINITY) return
    cancelTimer = startTimer(Math.max(0, Math.ceil(earliest - now())), fire)
  }

  /** The queue whose head falls due first, if that is no later than `t`. */
  const nextDue = (t: number): Fifo | undefined => {
    let next: Fifo | undefined
    let due = t
    for (const fifo of byDelay.values()) {
      const head = fifo.peek()
      if (head !== undefined && head.due <= due) {
        next = fifo
        due = head.due
      }
    }
    return next
  }

  const fire = () => {
    cancelTimer = undefined
    timerDue = Number.POSITIVE_INFINITY
    const t = now()
    try {
      // In due order across delays; a callback that calls `clear` empties the map and ends this.
      for (let fifo = nextDue(t); fifo !== undefined; fifo = nextDue(t)) {
        const entry = fifo.shift()!
        waiting--
        entry.run()
      }
    } finally {
      schedule()
    }
  }

  return {
    after: (delayMs, run) => {
      // NaN and the like count as "now" rather than never.
      if (!(delayMs > 0)) return run()
      let fifo = byDelay.get(delayMs)
      if (fifo === undefined) {
        fifo = new Fifo()
        byDelay.set(delayMs, fifo)
      }
      const due = now() + delayMs
      fifo.push({ due, run })
      waiting++
      if (due < timerDue) schedule()
    },
    size: () => waiting,
    clear: () => {
      cancelTimer?.()
      cancelTimer = undefined
      timerDue = Number.POSITIVE_INFINITY
      byDelay.clear()
      waiting = 0
    },
  }
}

/**
 * Deadlines on Effect's `Clock`: one sleeping fiber at a time (for the earliest due), in the
 * context of the layer that makes them, cleared when that layer's scope closes.
 */
export const clockDeadlines = Effect.gen(function* () {
  const clock = yield* Clock.Clock
  const fork = Effect.runForkWith(yield* Effect.context<never>())
  const deadlines = makeDeadlines(
    () => clock.currentTimeMillisUnsafe(),
    (ms, run) => {
      const fiber = fork(Effect.andThen(Effect.sleep(ms), Effect.sync(run)))
      return () => fiber.interruptUnsafe()
    },
  )
  yield* Effect.addFinalizer(() => Effect.sync(deadlines.clear))
  return deadlines
})
