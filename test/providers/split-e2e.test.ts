import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { loadTranscript } from "../support/wire.ts"
import { expectations, expectOutcome } from "./expectations.ts"
import { adapterFor, collect, requestFor } from "./harness.ts"
import { utf8Variant } from "./variants.ts"

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeUpstream()
})
afterAll(() => fake.close())
beforeEach(() => fake.reset())

/**
 * The property, end to end: whatever byte offsets the upstream's writes are cut at (inside
 * UTF-8 sequences and CRLF pairs included), the adapter gives the same reply over real HTTP.
 */
describe("random write boundaries over real HTTP (property)", () => {
  const cases = [
    "openai-chat-stream",
    "perplexity-stream",
    "openrouter-stream",
    "openrouter-stream-error",
    "anthropic-messages-stream",
    "anthropic-messages-stream-error",
    "gemini-stream",
  ]
  for (const name of cases) {
    it(name, async () => {
      const expected = expectations[name]!
      const provider = expected.provider
      const transcript = loadTranscript(name)
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.nat({ max: transcript.body.length }), { minLength: 1, maxLength: 30 }),
          (cuts) =>
            Effect.runPromise(
              Effect.scoped(
                Effect.gen(function* () {
                  fake.on(provider, { transcript, split: cuts })
                  const adapter = yield* adapterFor(fake, provider)
                  expectOutcome(yield* collect(adapter.stream(requestFor(provider))), expected)
                }),
              ),
            ),
        ),
        { numRuns: 12 },
      )
    })
  }

  it("multi-byte text split inside its characters arrives whole", async () => {
    const transcript = utf8Variant(loadTranscript("anthropic-messages-stream"))
    const whole = "ü🌍2"
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat({ max: transcript.body.length }), { minLength: 1, maxLength: 200 }),
        (cuts) =>
          Effect.runPromise(
            Effect.scoped(
              Effect.gen(function* () {
                fake.on("anthropic", { transcript, split: cuts })
                const adapter = yield* adapterFor(fake, "anthropic")
                const outcome = yield* collect(adapter.stream(requestFor("anthropic")))
                expect(outcome.error).toBeUndefined()
                expect(outcome.text).toBe(whole)
              }),
            ),
          ),
      ),
      { numRuns: 12 },
    )
  })
})
