import { expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { describe } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { Coalescer } from "../../src/engine/coalescer.ts"

/** The coalescer's TTLs on Effect's clock: TestClock moves them, nothing sleeps. */
const TestLayer = Coalescer.layer.pipe(
  Layer.provide(AppConfig.fromRecord({ COALESCE_RESULT_TTL_MS: "10000", COALESCE_ERROR_TTL_MS: "2000" })),
)

describe("Coalescer TTLs", () => {
  it.effect(
    "a completed key is kept for the result TTL, a failed one for the error TTL, a cancelled one not at all",
    () =>
      Effect.gen(function* () {
        const coalescer = yield* Coalescer
        const roleOf = (key: string) => coalescer.claim<never>(key, key)._tag
        for (const [key, outcome, ttl] of [
          ["done", "Completed", 10_000],
          ["failed", "Failed", 2_000],
        ] as const) {
          expect(roleOf(key)).toBe("Leader")
          coalescer.settle(key, outcome)
          expect(roleOf(key)).toBe("Follower")
          yield* TestClock.adjust(ttl - 1)
          expect(roleOf(key)).toBe("Follower")
          yield* TestClock.adjust(2)
          // Forgotten: the next request leads anew (and claims it again).
          expect(roleOf(key)).toBe("Leader")
        }
        expect(roleOf("cancelled")).toBe("Leader")
        coalescer.settle("cancelled", "Cancelled")
        expect(roleOf("cancelled")).toBe("Leader")
      }).pipe(Effect.provide(TestLayer)),
  )
})
