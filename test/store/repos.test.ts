import { Effect, Option } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { newMessageId, newRequestId, type OrgId, type ThreadId } from "../../src/domain/ids.ts"
import type { Message } from "../../src/domain/thread.ts"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { RequestLogRepo } from "../../src/store/request-log-repo.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { buildRepos } from "../support/store.ts"

let repos: Awaited<ReturnType<typeof buildRepos>>
beforeAll(async () => {
  repos = await buildRepos()
})
afterAll(() => repos?.close())

const newOrg = () => `org-${crypto.randomUUID()}` as OrgId

const owner = `test-${crypto.randomUUID()}`

/** What a thread actor does for a turn: the thread's history (loaded), then the turn's two messages. */
const startTurn = (org: OrgId, threadId: ThreadId, content: string, leaseMs = 60_000, by = owner) =>
  Effect.gen(function* () {
    const messages = yield* MessagesRepo
    const loaded = yield* messages.loadThread(org, threadId)
    const inserted = yield* messages.insertTurn({
      org,
      threadId,
      requestId: newRequestId(),
      userMessageId: newMessageId(),
      assistantMessageId: newMessageId(),
      messages: [{ role: "user", content }],
      provider: "mock",
      model: "faststream-ttft",
      owner: by,
      leaseMs,
    })
    const history = [
      ...Option.match(loaded, { onNone: () => [], onSome: (t) => t.history }),
      { role: "user", content },
    ]
    return { ...inserted, history, lastSettledId: Option.map(loaded, (t) => t.lastSettledId) }
  })

describe(`repositories on ${inject("backend")} PostgreSQL`, () => {
  it("creates, finds and lists threads within one org only", async () => {
    const org = newOrg()
    const [a, b] = await repos.run(
      Effect.gen(function* () {
        const threads = yield* ThreadsRepo
        const a = yield* threads.create(org, "a")
        const b = yield* threads.create(org, null)
        return [a, b] as const
      }),
    )
    expect(a.title).toBe("a")
    expect(b.title).toBeNull()
    const threads = repos.get(ThreadsRepo)
    const listed = await repos.run(threads.list(org, 10))
    expect(listed.map((t) => t.thread_id)).toEqual([b.thread_id, a.thread_id])
    expect(Option.isSome(await repos.run(threads.find(org, a.thread_id)))).toBe(true)
    expect(Option.isNone(await repos.run(threads.find(newOrg(), a.thread_id)))).toBe(true)
    expect(await repos.run(threads.list(newOrg(), 10))).toEqual([])
    expect((await repos.run(threads.list(org, 1))).length).toBe(1)
  })

  it("starts a turn with the thread's completed history, and finishes it", async () => {
    const org = newOrg()
    const thread = await repos.run(repos.get(ThreadsRepo).create(org, null))
    const messages = repos.get(MessagesRepo)

    const first = await repos.run(startTurn(org, thread.thread_id, "first question"))
    expect(first.history).toEqual([{ role: "user", content: "first question" }])
    expect(first.assistantMessage.status).toBe("pending")
    const finished = await repos.run(
      messages.finishTurn(first.assistantMessage, {
        content: "first answer",
        status: "complete",
        usage: { input_tokens: 3, output_tokens: 2 },
        finishReason: "stop",
        errorCode: null,
      }),
    )
    expect(finished).toMatchObject({ content: "first answer", status: "complete", finish_reason: "stop" })

    // A failed reply is kept in the thread but is not sent upstream as history.
    const second = await repos.run(startTurn(org, thread.thread_id, "second question"))
    await repos.run(
      messages.finishTurn(second.assistantMessage, {
        content: "partial",
        status: "failed",
        usage: null,
        finishReason: null,
        errorCode: "upstream_error",
      }),
    )
    const third = await repos.run(startTurn(org, thread.thread_id, "third question"))
    // A new turn follows the last complete reply (the failed one does not move it).
    expect(Option.getOrThrow(third.lastSettledId)).toBe(first.assistantMessage.message_id)
    expect(third.history).toEqual([
      { role: "user", content: "first question" },
      { role: "assistant", content: "first answer" },
      { role: "user", content: "second question" },
      { role: "user", content: "third question" },
    ])

    const listed = await repos.run(messages.listByThread(org, thread.thread_id))
    expect(listed.map((m) => [m.role, m.status, m.content])).toEqual([
      ["user", "complete", "first question"],
      ["assistant", "complete", "first answer"],
      ["user", "complete", "second question"],
      ["assistant", "failed", "partial"],
      ["user", "complete", "third question"],
      ["assistant", "pending", ""],
    ])
    expect(listed[1]!.usage).toEqual({ input_tokens: 3, output_tokens: 2 })
    expect(listed[3]!.error_code).toBe("upstream_error")
    expect(await repos.run(messages.listByThread(newOrg(), thread.thread_id))).toEqual([])

    const byRequest = await repos.run(
      messages.findAssistantByRequest(org, first.assistantMessage.request_id!),
    )
    expect(Option.getOrThrow(byRequest).message.message_id).toBe(first.assistantMessage.message_id)
    expect(
      Option.isNone(
        await repos.run(messages.findAssistantByRequest(newOrg(), first.assistantMessage.request_id!)),
      ),
    ).toBe(true)
  })

  it("refuses a turn on another org's thread or an unknown one, writing nothing", async () => {
    const org = newOrg()
    const thread = await repos.run(repos.get(ThreadsRepo).create(org, null))
    const messages = repos.get(MessagesRepo)
    expect(Option.isNone(await repos.run(messages.loadThread(newOrg(), thread.thread_id)))).toBe(true)
    const intruder = await repos.run(Effect.flip(startTurn(newOrg(), thread.thread_id, "x")))
    expect(intruder._tag).toBe("ThreadNotFound")
    const unknown = await repos.run(Effect.flip(startTurn(org, crypto.randomUUID() as ThreadId, "x")))
    expect(unknown._tag).toBe("ThreadNotFound")
    expect(await repos.run(repos.get(MessagesRepo).listByThread(org, thread.thread_id))).toEqual([])
  })

  it("sweeps the unfinished replies whose lease ran out, and its own id's, never a live lease of another", async () => {
    const org = newOrg()
    const thread = await repos.run(repos.get(ThreadsRepo).create(org, null))
    const messages = repos.get(MessagesRepo)
    const done = await repos.run(startTurn(org, thread.thread_id, "done"))
    await repos.run(
      messages.finishTurn(
        done.assistantMessage,
        { content: "ok", status: "complete", usage: null, finishReason: "stop", errorCode: null },
        owner,
      ),
    )
    const other = `other-${crypto.randomUUID()}`
    // A live reply of another process, one whose lease ran out, and one of a restarted "me".
    const live = await repos.run(startTurn(org, thread.thread_id, "live elsewhere", 60_000, other))
    const expired = await repos.run(startTurn(org, thread.thread_id, "left by a crash", 1, other))
    const mine = await repos.run(startTurn(org, thread.thread_id, "mine before a restart", 60_000))
    await new Promise((resolve) => setTimeout(resolve, 20))
    const swept = await repos.run(messages.sweepInterrupted({ ownedBy: owner }))
    expect(swept).toBeGreaterThanOrEqual(2)
    const byId = new Map(
      (await repos.run(messages.listByThread(org, thread.thread_id))).map((m) => [m.message_id, m.status]),
    )
    expect(byId.get(done.assistantMessage.message_id)).toBe("complete")
    expect(byId.get(live.assistantMessage.message_id)).toBe("pending")
    expect(byId.get(expired.assistantMessage.message_id)).toBe("interrupted")
    expect(byId.get(mine.assistantMessage.message_id)).toBe("interrupted")
    // Another process's sweep leaves the live one too.
    await repos.run(messages.sweepInterrupted({ ownedBy: `third-${crypto.randomUUID()}` }))
    expect(
      (await repos.run(messages.listByThread(org, thread.thread_id))).find(
        (m) => m.message_id === live.assistantMessage.message_id,
      )?.status,
    ).toBe("pending")
  })

  it("writes running replies as they grow, in one statement for many, only its own and only unfinished", async () => {
    const org = newOrg()
    const thread = await repos.run(repos.get(ThreadsRepo).create(org, null))
    const messages = repos.get(MessagesRepo)
    const a = await repos.run(startTurn(org, thread.thread_id, "a"))
    const b = await repos.run(startTurn(org, thread.thread_id, "b"))
    const c = await repos.run(startTurn(org, thread.thread_id, "c", 60_000, "someone-else"))
    const ids = (p: { assistantMessage: Message }) => p.assistantMessage.message_id
    const written = await repos.run(
      messages.saveProgress(owner, 60_000, [
        { messageId: ids(a), text: "Hel", full: false, prevEventId: null, eventId: 4 },
        { messageId: ids(b), text: "Wor", full: false, prevEventId: null, eventId: 3 },
        { messageId: ids(c), text: "not mine", full: false, prevEventId: null, eventId: 3 },
      ]),
    )
    expect([...written].sort()).toEqual([ids(a), ids(b)].sort())
    // Appends after the write it follows; an append whose predecessor did not land is left out;
    // a whole-text write after a doubt replaces what is there.
    const second = await repos.run(
      messages.saveProgress(owner, 60_000, [
        { messageId: ids(a), text: "lo", full: false, prevEventId: 4, eventId: 6 },
        { messageId: ids(b), text: "ld", full: false, prevEventId: 99, eventId: 5 },
      ]),
    )
    expect(second).toEqual([ids(a)])
    await repos.run(
      messages.saveProgress(owner, 60_000, [
        { messageId: ids(b), text: "World", full: true, prevEventId: 3, eventId: 7 },
      ]),
    )
    const stored = async (p: Parameters<typeof ids>[0]) =>
      Option.getOrThrow(await repos.run(messages.findAssistantByRequest(org, p.assistantMessage.request_id!)))
    expect(await stored(a)).toMatchObject({
      lastEventId: 6,
      message: { content: "Hello", status: "streaming" },
    })
    expect(await stored(b)).toMatchObject({
      lastEventId: 7,
      message: { content: "World", status: "streaming" },
    })
    expect(await stored(c)).toMatchObject({ lastEventId: null, message: { content: "", status: "pending" } })
    // Finished: progress no longer touches it.
    await repos.run(
      messages.finishTurn(
        a.assistantMessage,
        {
          content: "Hello!",
          status: "complete",
          usage: null,
          finishReason: "stop",
          errorCode: null,
          lastEventId: 7,
        },
        owner,
      ),
    )
    expect(
      await repos.run(
        messages.saveProgress(owner, 60_000, [
          { messageId: ids(a), text: "late", full: false, prevEventId: 7, eventId: 8 },
        ]),
      ),
    ).toEqual([])
    expect(await stored(a)).toMatchObject({
      lastEventId: 7,
      message: { content: "Hello!", status: "complete" },
    })
  })

  it("writes the request log in batches", async () => {
    const log = repos.get(RequestLogRepo)
    const org = newOrg()
    const entries = Array.from({ length: 3 }, (_, i) => ({
      request_id: crypto.randomUUID(),
      org_id: org,
      thread_id: null,
      provider: "mock",
      model: "faststream-ttft",
      coalesce: "leader",
      status: i === 2 ? "error" : "ok",
      error_code: i === 2 ? "upstream_error" : null,
      queue_wait_ms: 0.5,
      ttft_ms: 20 + i,
      latency_ms: 100 + i,
      input_tokens: 4,
      output_tokens: 8,
    }))
    await repos.run(log.insertMany(entries))
    await repos.run(log.insertMany([]))
    const recent = (await repos.run(log.recent(100))).filter((row) => row.org_id === org)
    expect(recent.map((row) => row.request_id).sort()).toEqual(entries.map((e) => e.request_id).sort())
    expect(recent.find((row) => row.status === "error")?.error_code).toBe("upstream_error")
  })
})
