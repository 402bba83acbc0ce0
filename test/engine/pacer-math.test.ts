import { describe, expect, it } from "vitest"
import { FairQueue } from "../../src/engine/fair-queue.ts"
import { makeBucket, msUntilToken, refill, tryTake } from "../../src/engine/token-bucket.ts"

describe("token bucket", () => {
  it("starts full, spends one token per take, refills at the rate, never past capacity", () => {
    const bucket = makeBucket(10, 3, 0)
    expect([tryTake(bucket, 0), tryTake(bucket, 0), tryTake(bucket, 0), tryTake(bucket, 0)]).toEqual([
      true,
      true,
      true,
      false,
    ])
    expect(msUntilToken(bucket, 0)).toBeCloseTo(100)
    expect(msUntilToken(bucket, 40)).toBeCloseTo(60)
    expect(tryTake(bucket, 99)).toBe(false)
    expect(tryTake(bucket, 100)).toBe(true)
    refill(bucket, 10_000)
    expect(bucket.tokens).toBe(3)
  })

  it("admits exactly rate × seconds + burst over a window", () => {
    const bucket = makeBucket(50, 5, 0)
    let admitted = 0
    for (let t = 0; t <= 10_000; t++) while (tryTake(bucket, t)) admitted++
    expect(admitted).toBe(50 * 10 + 5)
  })
})

describe("fair queue", () => {
  it("serves orgs in turn: one org's burst does not starve another's single request", () => {
    const queue = new FairQueue<string>()
    for (let i = 0; i < 1000; i++) queue.push("big", `big-${i}`)
    queue.push("small", "small-0")
    const order = [queue.shift(), queue.shift(), queue.shift()]
    expect(order).toContain("small-0")
    expect(queue.size).toBe(998)
  })

  it("round-robins across many orgs and keeps each org's order", () => {
    const queue = new FairQueue<string>()
    for (const org of ["a", "b", "c"]) for (let i = 0; i < 3; i++) queue.push(org, `${org}${i}`)
    const out: Array<string> = []
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) out.push(item)
    expect(out).toEqual(["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"])
  })

  it("removes a waiter that gave up, wherever it stands", () => {
    const queue = new FairQueue<string>()
    queue.push("a", "a0")
    queue.push("b", "b0")
    queue.push("a", "a1")
    expect(queue.remove("b", "b0")).toBe(true)
    expect(queue.remove("b", "b0")).toBe(false)
    expect([queue.shift(), queue.shift(), queue.shift()]).toEqual(["a0", "a1", undefined])
    expect(queue.size).toBe(0)
  })
})
