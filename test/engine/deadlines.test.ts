import { describe, expect, it } from "vitest"
import { makeDeadlines } from "../../src/engine/deadlines.ts"

/**
 * The timers are real (short delays); where ordering must not depend on how busy the machine is,
 * the clock is injected and moved by hand: the real timer then only decides *when* the deadlines
 * look at the clock, and the injected clock decides *what* is due.
 */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const waitFor = async (condition: () => boolean, what: string, timeoutMs = 3_000) => {
  const end = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(2)
  }
}

const manualClock = (start = 0) => {
  let t = start
  return {
    now: () => t,
    set: (value: number) => {
      t = value
    },
  }
}

/** Timers keeping the event loop alive (unref'd ones are not counted). */
const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length

describe("makeDeadlines: each callback runs once, not before it is due", () => {
  it("with the default clock (performance.now)", async () => {
    const deadlines = makeDeadlines()
    const delays = [5, 40, 20, 5, 10, 40, 15, 30, 5]
    const due: Array<number> = []
    const ranAt: Array<Array<number>> = delays.map(() => [])
    delays.forEach((delay, i) => {
      due.push(performance.now() + delay)
      deadlines.after(delay, () => ranAt[i]!.push(performance.now()))
    })
    expect(deadlines.size()).toBe(delays.length)
    await waitFor(() => deadlines.size() === 0, "every callback")
    // A little longer: nothing runs a second time.
    await sleep(50)
    ranAt.forEach((times, i) => {
      expect(times).toHaveLength(1)
      expect(times[0]!).toBeGreaterThanOrEqual(due[i]!)
    })
  })

  it("with an injected clock: checked against that clock", async () => {
    const offset = 1_000_000
    const now = () => performance.now() + offset
    const deadlines = makeDeadlines(now)
    const runs: Array<{ due: number; ranAt: number; count: number }> = []
    for (const delay of [30, 5, 20, 5, 10]) {
      const entry = { due: now() + delay, ranAt: Number.NaN, count: 0 }
      runs.push(entry)
      deadlines.after(delay, () => {
        entry.ranAt = now()
        entry.count++
      })
    }
    await waitFor(() => runs.every((r) => r.count > 0), "every callback")
    await sleep(40)
    for (const r of runs) {
      expect(r.count).toBe(1)
      expect(r.ranAt).toBeGreaterThanOrEqual(r.due)
    }
    expect(deadlines.size()).toBe(0)
  })

  it("callbacks of one delay run in the order they were added", async () => {
    const deadlines = makeDeadlines()
    const ran: Array<number> = []
    for (let i = 0; i < 50; i++) deadlines.after(i % 2 === 0 ? 5 : 12, () => ran.push(i))
    await waitFor(() => ran.length === 50, "50 callbacks")
    const evens = ran.filter((i) => i % 2 === 0)
    const odds = ran.filter((i) => i % 2 === 1)
    expect(evens).toEqual(Array.from({ length: 25 }, (_, k) => 2 * k))
    expect(odds).toEqual(Array.from({ length: 25 }, (_, k) => 2 * k + 1))
    expect(deadlines.size()).toBe(0)
  })

  it("nothing runs while the (injected) clock has not reached its due time, even as the timer fires", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    let ran = 0
    deadlines.after(5, () => ran++)
    // The real timer fires after ~5 ms and re-arms, but the clock still says 0, then 4.99.
    await sleep(30)
    expect(ran).toBe(0)
    clock.set(4.99)
    await sleep(30)
    expect(ran).toBe(0)
    expect(deadlines.size()).toBe(1)
    clock.set(5)
    await waitFor(() => ran === 1, "the callback")
    await sleep(20)
    expect(ran).toBe(1)
    expect(deadlines.size()).toBe(0)
  })
})

describe("makeDeadlines: several distinct delays", () => {
  it("a 30 ms deadline added first and a 10 ms one added later: the 10 ms one runs first", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const ran: Array<string> = []
    deadlines.after(30, () => ran.push("30 ms"))
    clock.set(5)
    deadlines.after(10, () => ran.push("10 ms")) // due at 15, before 30
    clock.set(15)
    await waitFor(() => ran.length === 1, "the 10 ms callback")
    expect(ran).toEqual(["10 ms"])
    await sleep(30)
    expect(ran).toEqual(["10 ms"]) // the clock says 15: the 30 ms one is not due
    clock.set(30)
    await waitFor(() => ran.length === 2, "the 30 ms callback")
    expect(ran).toEqual(["10 ms", "30 ms"])
    expect(deadlines.size()).toBe(0)
  })

  it("interleaved delays run in due order, firing by firing", async () => {
    const clock = manualClock(100)
    const deadlines = makeDeadlines(clock.now)
    const ran: Array<string> = []
    const add = (delay: number, name: string) => deadlines.after(delay, () => ran.push(name))
    add(30, "a") // due 130
    add(10, "b") // due 110
    add(20, "c") // due 120
    clock.set(102)
    add(10, "d") // due 112
    add(30, "e") // due 132
    add(5, "f") // due 107
    expect(deadlines.size()).toBe(6)
    const steps: Array<[number, Array<string>]> = [
      [107, ["f"]],
      [110, ["f", "b"]],
      [112, ["f", "b", "d"]],
      [120, ["f", "b", "d", "c"]],
      [130, ["f", "b", "d", "c", "a"]],
      [132, ["f", "b", "d", "c", "a", "e"]],
    ]
    for (const [t, expected] of steps) {
      clock.set(t)
      await waitFor(() => ran.length === expected.length, `the callbacks due by ${t}`)
      expect(ran).toEqual(expected)
      expect(deadlines.size()).toBe(6 - expected.length)
    }
    await sleep(20)
    expect(ran).toHaveLength(6)
  })

  it("a real-clock mix of 5–40 ms delays: each runs once, same-delay ones in insertion order", async () => {
    const deadlines = makeDeadlines()
    const delays = [40, 10, 25, 5, 40, 10, 5, 25]
    const ran: Array<number> = []
    delays.forEach((delay, i) => {
      deadlines.after(delay, () => ran.push(i))
    })
    await waitFor(() => ran.length === delays.length, "every callback")
    await sleep(50)
    expect([...ran].sort((x, y) => x - y)).toEqual(delays.map((_, i) => i))
    for (const delay of new Set(delays)) {
      const sameDelay = ran.filter((i) => delays[i] === delay)
      expect(sameDelay).toEqual([...sameDelay].sort((x, y) => x - y))
    }
  })

  // A late firing (event loop busy, GC pause) with entries of several delays due at once.
  it("entries of different delays due in the same firing still run in due order", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const ran: Array<string> = []
    deadlines.after(30, () => ran.push("due 30"))
    deadlines.after(10, () => ran.push("due 10"))
    clock.set(100) // the timer fires "late": both are due
    await waitFor(() => ran.length === 2, "both callbacks")
    expect(ran).toEqual(["due 10", "due 30"])
  })
})

describe("makeDeadlines: zero and negative delays", () => {
  it("after(0, run) runs synchronously and is never counted", () => {
    const deadlines = makeDeadlines()
    let ran = 0
    deadlines.after(0, () => ran++)
    expect(ran).toBe(1)
    expect(deadlines.size()).toBe(0)
  })

  it("a negative delay runs synchronously too", () => {
    const deadlines = makeDeadlines()
    const ran: Array<number> = []
    deadlines.after(-1, () => ran.push(1))
    deadlines.after(-1_000, () => ran.push(2))
    deadlines.after(Number.NEGATIVE_INFINITY, () => ran.push(3))
    expect(ran).toEqual([1, 2, 3])
    expect(deadlines.size()).toBe(0)
  })

  it("runs synchronously even with others waiting, and does not disturb them", async () => {
    const deadlines = makeDeadlines()
    const ran: Array<string> = []
    deadlines.after(10, () => ran.push("later"))
    deadlines.after(0, () => ran.push("now"))
    expect(ran).toEqual(["now"])
    expect(deadlines.size()).toBe(1)
    await waitFor(() => ran.length === 2, "the delayed callback")
    await sleep(20)
    expect(ran).toEqual(["now", "later"])
  })
})

describe("makeDeadlines: size()", () => {
  it("counts waiting callbacks and goes back to 0 as they run", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    expect(deadlines.size()).toBe(0)
    deadlines.after(10, () => {})
    deadlines.after(10, () => {})
    deadlines.after(20, () => {})
    expect(deadlines.size()).toBe(3)
    clock.set(10)
    await waitFor(() => deadlines.size() === 1, "the 10 ms callbacks")
    clock.set(20)
    await waitFor(() => deadlines.size() === 0, "the 20 ms callback")
    await sleep(20)
    expect(deadlines.size()).toBe(0)
  })

  it("is 0 while a callback runs if it was the last one", async () => {
    const deadlines = makeDeadlines()
    const seen: Array<number> = []
    deadlines.after(5, () => seen.push(deadlines.size()))
    await waitFor(() => seen.length === 1, "the callback")
    expect(seen).toEqual([0])
  })
})

describe("makeDeadlines: clear()", () => {
  it("drops everything: nothing runs afterwards", async () => {
    const deadlines = makeDeadlines()
    let ran = 0
    for (const delay of [5, 10, 10, 20, 40]) deadlines.after(delay, () => ran++)
    expect(deadlines.size()).toBe(5)
    deadlines.clear()
    expect(deadlines.size()).toBe(0)
    await sleep(80)
    expect(ran).toBe(0)
    expect(deadlines.size()).toBe(0)
  })

  it("drops what is left after some already ran", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const ran: Array<number> = []
    deadlines.after(10, () => ran.push(10))
    deadlines.after(20, () => ran.push(20))
    clock.set(10)
    await waitFor(() => ran.length === 1, "the first callback")
    deadlines.clear()
    clock.set(1_000)
    await sleep(40)
    expect(ran).toEqual([10])
    expect(deadlines.size()).toBe(0)
  })

  it("is harmless when empty or called twice, and the deadlines stay usable", async () => {
    const deadlines = makeDeadlines()
    deadlines.clear()
    deadlines.after(10, () => {})
    deadlines.clear()
    deadlines.clear()
    expect(deadlines.size()).toBe(0)
    let ran = 0
    deadlines.after(5, () => ran++)
    expect(deadlines.size()).toBe(1)
    await waitFor(() => ran === 1, "the callback added after clear()")
    expect(deadlines.size()).toBe(0)
  })

  it("clear() called by a callback stops the other due callbacks of the same firing", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const ran: Array<number> = []
    deadlines.after(10, () => {
      ran.push(1)
      deadlines.clear()
    })
    deadlines.after(10, () => ran.push(2))
    deadlines.after(10, () => ran.push(3))
    clock.set(10)
    await waitFor(() => ran.length > 0, "the first callback")
    await sleep(30)
    expect({ ran, size: deadlines.size() }).toEqual({ ran: [1], size: 0 })
  })
})

describe("makeDeadlines: many entries (FIFO compaction past 1,024 spent entries)", () => {
  it("5,000 entries with the same delay all run once, in order", async () => {
    const deadlines = makeDeadlines()
    const n = 5_000
    const counts = new Uint8Array(n)
    const order: Array<number> = []
    for (let i = 0; i < n; i++)
      deadlines.after(5, () => {
        counts[i]!++
        order.push(i)
      })
    expect(deadlines.size()).toBe(n)
    await waitFor(() => deadlines.size() === 0, "5,000 callbacks")
    await sleep(20)
    expect(counts.every((c) => c === 1)).toBe(true)
    expect(order).toEqual(Array.from({ length: n }, (_, i) => i))
  })

  it("compaction while entries are still waiting and more are pushed between firings", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const order: Array<number> = []
    let next = 0
    const addBatch = (count: number) => {
      for (let k = 0; k < count; k++) {
        const i = next++
        deadlines.after(10, () => order.push(i))
      }
    }
    addBatch(3_000) // due 10
    clock.set(5)
    addBatch(3_000) // due 15
    clock.set(10)
    await waitFor(() => order.length === 3_000, "the first batch")
    expect(deadlines.size()).toBe(3_000)
    addBatch(2_000) // due 20
    clock.set(15)
    await waitFor(() => order.length === 6_000, "the second batch")
    expect(deadlines.size()).toBe(2_000)
    clock.set(20)
    await waitFor(() => order.length === 8_000, "the third batch")
    expect(order).toEqual(Array.from({ length: 8_000 }, (_, i) => i))
    expect(deadlines.size()).toBe(0)
  })

  it("callbacks that re-add to the same FIFO while it is being drained and compacted", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const n = 3_000
    const first = new Uint8Array(n)
    const second = new Uint8Array(n)
    for (let i = 0; i < n; i++)
      deadlines.after(10, () => {
        first[i]!++
        deadlines.after(10, () => second[i]!++)
      })
    clock.set(10)
    await waitFor(() => first.every((c) => c === 1), "the first round")
    expect(second.every((c) => c === 0)).toBe(true) // due at 20, not in the same firing
    expect(deadlines.size()).toBe(n)
    clock.set(20)
    await waitFor(() => deadlines.size() === 0, "the second round")
    await sleep(20)
    expect(first.every((c) => c === 1)).toBe(true)
    expect(second.every((c) => c === 1)).toBe(true)
  })
})

describe("makeDeadlines: a callback adding a deadline while it runs", () => {
  it("is honoured, for a new delay, the same delay and a zero delay", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    const ran: Array<string> = []
    deadlines.after(10, () => {
      ran.push("outer")
      deadlines.after(0, () => ran.push("inner now"))
      deadlines.after(10, () => ran.push("inner same delay")) // due 20
      deadlines.after(5, () => ran.push("inner new delay")) // due 15
    })
    clock.set(10)
    await waitFor(() => ran.length === 2, "the outer callback")
    expect(ran).toEqual(["outer", "inner now"])
    expect(deadlines.size()).toBe(2)
    clock.set(15)
    await waitFor(() => ran.length === 3, "the 5 ms inner callback")
    clock.set(20)
    await waitFor(() => ran.length === 4, "the 10 ms inner callback")
    expect(ran).toEqual(["outer", "inner now", "inner new delay", "inner same delay"])
    expect(deadlines.size()).toBe(0)
  })

  it("with the real clock: a chain of deadlines, each added by the previous one", async () => {
    const deadlines = makeDeadlines()
    const ran: Array<number> = []
    const step = (i: number) => {
      ran.push(i)
      if (i < 5) deadlines.after(i % 2 === 0 ? 5 : 8, () => step(i + 1))
    }
    deadlines.after(5, () => step(0))
    await waitFor(() => ran.length === 6, "the chain")
    expect(ran).toEqual([0, 1, 2, 3, 4, 5])
    expect(deadlines.size()).toBe(0)
  })
})

describe("makeDeadlines: the timer does not keep the process alive", () => {
  it("its timer is unref'd (not among the timers keeping the event loop alive)", () => {
    const deadlines = makeDeadlines()
    deadlines.after(60_000, () => {})
    expect(deadlines.size()).toBe(1)
    const withDeadline = refTimers()
    deadlines.clear() // clears the only timer the deadlines hold
    expect(refTimers()).toBe(withDeadline)
    expect(deadlines.size()).toBe(0)

    // The measure does see a ref'd timer.
    const control = setTimeout(() => {}, 60_000)
    const withControl = refTimers()
    clearTimeout(control)
    expect(refTimers()).toBe(withControl - 1)
  })

  it("nor does the timer re-armed after an early firing", async () => {
    const clock = manualClock()
    const deadlines = makeDeadlines(clock.now)
    deadlines.after(5, () => {})
    await sleep(25) // fired at least once with nothing due (clock still 0), re-armed
    expect(deadlines.size()).toBe(1)
    const withDeadline = refTimers()
    deadlines.clear()
    expect(refTimers()).toBe(withDeadline)
  })

  it("a forgotten 10-minute deadline is left waiting (the file must still finish promptly)", () => {
    const deadlines = makeDeadlines()
    deadlines.after(600_000, () => {
      throw new Error("must never run")
    })
    expect(deadlines.size()).toBe(1)
    // Left waiting on purpose, as a finished generation's retention is at shutdown: being unref'd,
    // it holds nothing open.
  })
})
