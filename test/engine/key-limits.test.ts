import { describe, expect, it } from "vitest"
import type { KeyLimitError } from "../../src/domain/errors.ts"
import type { OrgId } from "../../src/domain/ids.ts"
import type { Caller, KeyId, KeyLimits } from "../../src/domain/keys.ts"
import { type KeyAdmission, makeKeyLimits } from "../../src/engine/key-limits.ts"

/** KeyLimiter's counters on a hand-moved clock: no waiting, no timing in the assertions. */

const caller = (limits: KeyLimits, keyId: string | null = crypto.randomUUID()): Caller => ({
  org: "acme" as OrgId,
  keyId: keyId as KeyId | null,
  limits,
})

const setup = (start = Date.UTC(2026, 0, 1, 12, 0, 0)) => {
  const clock = { t: start }
  const limits = makeKeyLimits(() => clock.t)
  return { clock, limits }
}

const isRefusal = (a: KeyAdmission | KeyLimitError): a is KeyLimitError => "_tag" in a
const admitted = (a: KeyAdmission | KeyLimitError): KeyAdmission => {
  if (isRefusal(a)) throw new Error(`expected admission, got ${a._tag}`)
  return a
}

describe("KeyLimiter", () => {
  it("a caller without a key is never limited", () => {
    const { limits } = setup()
    const c = caller({ requests_per_minute: 1, concurrent_requests: 1, tokens_per_day: 1 }, null)
    for (let i = 0; i < 100; i++) expect(isRefusal(limits.admit(c))).toBe(false)
  })

  it("requests_per_minute: a rolling minute, with retry-after until the oldest request leaves it", () => {
    const { clock, limits } = setup()
    const c = caller({ requests_per_minute: 3 })
    admitted(limits.admit(c)).release()
    clock.t += 20_000
    admitted(limits.admit(c)).release()
    admitted(limits.admit(c)).release()
    const refused = limits.admit(c)
    expect(isRefusal(refused) && refused.code).toBe("key_rate_limited")
    // The first request leaves the window 60 s after it came: 40 s from now.
    expect(isRefusal(refused) && refused.retryAfterMs).toBe(40_000)
    expect(isRefusal(refused) && refused.status).toBe(429)
    clock.t += 40_000
    admitted(limits.admit(c)).release()
    expect(isRefusal(limits.admit(c))).toBe(true)
    // A refused request is not counted: after a quiet minute all three places are back.
    clock.t += 60_000
    for (let i = 0; i < 3; i++) admitted(limits.admit(c)).release()
  })

  it("concurrent_requests: a slot per request in flight, back on release (once, however often called)", () => {
    const { limits } = setup()
    const c = caller({ concurrent_requests: 2 })
    const a = admitted(limits.admit(c))
    const b = admitted(limits.admit(c))
    const refused = limits.admit(c)
    expect(isRefusal(refused) && refused.code).toBe("key_concurrency_limited")
    expect(isRefusal(refused) && refused.retryAfterMs).toBeGreaterThan(0)
    a.release()
    a.release()
    const c3 = admitted(limits.admit(c))
    expect(isRefusal(limits.admit(c))).toBe(true)
    b.release()
    c3.release()
    expect(limits.usage(c.keyId!).inFlight).toBe(0)
  })

  it("tokens_per_day: a reply under way finishes over budget, the next request is refused until UTC midnight", () => {
    const { clock, limits } = setup(Date.UTC(2026, 0, 1, 23, 0, 0))
    const c = caller({ tokens_per_day: 100 })
    const first = admitted(limits.admit(c))
    // Two requests in flight together: both were under budget when they started.
    const second = admitted(limits.admit(c))
    first.charge(60)
    first.release()
    second.charge(70)
    second.release()
    expect(limits.usage(c.keyId!).tokensToday).toBe(130)
    const refused = limits.admit(c)
    expect(isRefusal(refused) && refused.code).toBe("key_budget_exhausted")
    expect(isRefusal(refused) && refused.retryAfterMs).toBe(3_600_000)
    clock.t = Date.UTC(2026, 0, 2, 0, 0, 0)
    admitted(limits.admit(c)).release()
    expect(limits.usage(c.keyId!).tokensToday).toBe(0)
  })

  it("keys are counted apart", () => {
    const { limits } = setup()
    const a = caller({ concurrent_requests: 1 })
    const b = caller({ concurrent_requests: 1 })
    admitted(limits.admit(a))
    expect(isRefusal(limits.admit(a))).toBe(true)
    admitted(limits.admit(b))
  })
})
