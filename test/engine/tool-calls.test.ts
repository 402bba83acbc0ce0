import { describe, expect, it } from "vitest"
import { bypassesCoalescing, ToolCallAccumulator } from "../../src/engine/tool-calls.ts"
import { toolCallDelta } from "../../src/providers/provider.ts"

const delta = (...args: Parameters<typeof toolCallDelta>) =>
  toolCallDelta(...args) as Extract<ReturnType<typeof toolCallDelta>, { _tag: "ToolCallDelta" }>

describe("ToolCallAccumulator", () => {
  it("puts calls together from fragments, in index order, and says {} for a call without arguments", () => {
    const calls = new ToolCallAccumulator()
    expect(calls.add(delta(0, "", { id: "a", name: "f" }))).toEqual({
      index: 0,
      id: "a",
      name: "f",
      arguments_delta: "",
    })
    expect(calls.add(delta(0, '{"ci'))).toEqual({ index: 0, arguments_delta: '{"ci' })
    calls.add(delta(1, "", { id: "b", name: "g", extra: { thoughtSignature: "sig" } }))
    calls.add(delta(0, 'ty":"Paris"}'))
    expect(calls.result()).toEqual([
      { id: "a", name: "f", arguments: '{"city":"Paris"}' },
      { id: "b", name: "g", arguments: "{}", extra: { thoughtSignature: "sig" } },
    ])
  })

  it("has no result when no call was made", () => {
    expect(new ToolCallAccumulator().result()).toBeUndefined()
  })

  it("the frame of a signed call's first fragment carries its signature", () => {
    const calls = new ToolCallAccumulator()
    expect(calls.add(delta(0, "{}", { id: "a", name: "f", extra: { thoughtSignature: "s" } }))).toEqual({
      index: 0,
      id: "a",
      name: "f",
      arguments_delta: "{}",
      thought_signature: "s",
    })
  })
})

describe("bypassesCoalescing", () => {
  it("tools, tool calls, tool results, JSON output bypass; plain turns do not", () => {
    expect(bypassesCoalescing(undefined, [{ role: "user", content: "x" }])).toBe(false)
    expect(bypassesCoalescing({ tools: [] }, undefined)).toBe(false)
    expect(bypassesCoalescing({ tools: [{ name: "f" }] }, undefined)).toBe(true)
    expect(bypassesCoalescing({ responseFormat: { type: "json_object" } }, undefined)).toBe(true)
    expect(bypassesCoalescing(undefined, [{ role: "tool", toolCallId: "a", content: "1" }])).toBe(true)
    expect(
      bypassesCoalescing(undefined, [
        { role: "assistant", content: "", toolCalls: [{ id: "a", name: "f", arguments: "{}" }] },
      ]),
    ).toBe(true)
  })
})
