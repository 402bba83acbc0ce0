import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { makeMockProvider } from "../../src/providers/mock.ts"
import type { ProviderEvent } from "../../src/providers/provider.ts"

describe("the mock's never-ending model", () => {
  it("obeys max_tokens: that many tokens, then finish length", async () => {
    const adapter = makeMockProvider({ ttftMs: 0, tokens: 5, tokenIntervalMs: 0 })
    const events: Array<ProviderEvent> = []
    await Effect.runPromise(
      adapter.run(
        {
          provider: "mock",
          model: "never-ending",
          messages: [{ role: "user", content: "go" }],
          maxTokens: 7,
        },
        (event) => events.push(event),
      ),
    )
    expect(events.filter((e) => e._tag === "TextDelta")).toHaveLength(7)
    expect(events.at(-1)).toMatchObject({ _tag: "Finish", reason: "length", usage: { output_tokens: 7 } })
  })
})
