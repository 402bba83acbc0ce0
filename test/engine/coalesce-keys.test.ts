import { describe, expect, it } from "vitest"
import type { ChatRequest } from "../../src/domain/chat.ts"
import type { OrgId, ThreadId } from "../../src/domain/ids.ts"
import { coalesceKey, conversationKey } from "../../src/engine/coalescer.ts"

const orgA = "org-a" as OrgId
const orgB = "org-b" as OrgId
const body = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  role: "user",
  content,
  provider: "openai",
  model: "gpt-4o-mini",
  ...extra,
})
const longConversation = Array.from({ length: 200 }, (_, i) => ({
  role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
  content: `message ${i} ${"x".repeat(500)}`,
}))

describe("coalescing keys", () => {
  it("stay small however long the conversation or message they stand for", () => {
    const key = conversationKey(orgA, longConversation, body("last"))
    expect(JSON.stringify(longConversation).length).toBeGreaterThan(100_000)
    expect(key.length).toBeLessThan(100)
    expect(coalesceKey(orgA, "t1" as ThreadId, null, body("y".repeat(100_000))).length).toBeLessThan(100)
  })

  it("match for the same request and differ for any other conversation, parameter or org", () => {
    const key = conversationKey(orgA, longConversation, body("last"))
    expect(conversationKey(orgA, structuredClone(longConversation), body("last"))).toBe(key)
    const edited = longConversation.map((m, i) => (i === 150 ? { ...m, content: `${m.content}!` } : m))
    const others = [
      conversationKey(orgA, edited, body("last")),
      conversationKey(orgA, longConversation, body("last", { temperature: 0.5 })),
      conversationKey(orgA, longConversation, body("last", { max_tokens: 10 })),
      conversationKey(orgA, longConversation, body("last", { model: "gpt-4o" })),
      conversationKey(orgA, longConversation, body("last", { top_p: 0.5 })),
      conversationKey(orgA, longConversation, body("last", { stop: ["END"] })),
      conversationKey(orgB, longConversation, body("last")),
    ]
    for (const other of others) expect(other).not.toBe(key)
  })

  it("never match across orgs or threads for the same turn", () => {
    const turn = body("hello")
    const key = coalesceKey(orgA, "t1" as ThreadId, null, turn)
    expect(coalesceKey(orgA, "t1" as ThreadId, null, body("hello"))).toBe(key)
    expect(coalesceKey(orgB, "t1" as ThreadId, null, turn)).not.toBe(key)
    expect(coalesceKey(orgA, "t2" as ThreadId, null, turn)).not.toBe(key)
    expect(key.startsWith(`${orgA}:`)).toBe(true)
  })
})
