import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll, beforeEach, describe } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { loadTranscript, sharedWireDir, transcriptNames, wireDir } from "../support/wire.ts"
import { expectations, expectOutcome } from "./expectations.ts"
import { adapterFor, collect, requestFor } from "./harness.ts"

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeUpstream()
})
afterAll(() => fake.close())
beforeEach(() => fake.reset())

describe("every wire transcript, through a real HTTP exchange", () => {
  it("has an expectation for each file in ../shared/wire", () => {
    expect(Object.keys(expectations).sort()).toEqual([...transcriptNames()])
  })

  it.skipIf(!existsSync(sharedWireDir))("uses a copy identical to ../shared/wire", () => {
    const shared = readdirSync(sharedWireDir).sort()
    expect(readdirSync(wireDir).sort()).toEqual(shared)
    for (const file of shared) {
      expect(readFileSync(join(wireDir, file)).equals(readFileSync(join(sharedWireDir, file))), file).toBe(
        true,
      )
    }
  })

  for (const [name, expected] of Object.entries(expectations)) {
    it.live(name, () =>
      Effect.gen(function* () {
        const provider = expected.provider
        fake.on(provider, { transcript: name, split: "random", seed: name.length, maxWrite: 48 })
        const adapter = yield* adapterFor(fake, provider)
        const outcome = yield* collect(adapter.stream(requestFor(provider)))
        expectOutcome(outcome, expected)

        const transcript = loadTranscript(name)
        if (transcript.status === 200) {
          // TTFT is measured on the first body byte: FirstByte comes first, before anything parsed.
          expect(outcome.events[0]?._tag).toBe("FirstByte")
          expect(outcome.events.filter((e) => e._tag === "FirstByte")).toHaveLength(1)
        } else {
          expect(outcome.events).toEqual([])
        }
        expect(fake.calls(provider)).toHaveLength(1)
      }),
    )
  }
})
