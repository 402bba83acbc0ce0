import { Effect, Option } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { newRequestId, type OrgId, type ThreadId } from "../../src/domain/ids.ts"
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

const startTurn = (org: OrgId, threadId: ThreadId, content: string) =>
  Effect.flatMap(MessagesRepo, (messages) =>
    messages.startTurn({
      org,
      threadId,
      requestId: newRequestId(),
      content,
      provider: "mock",
      model: "faststream-ttft",
    }),
  )

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
    expect(Option.getOrThrow(byRequest).message_id).toBe(first.assistantMessage.message_id)
    expect(
      Option.isNone(
        await repos.run(messages.findAssistantByRequest(newOrg(), first.assistantMessage.request_id!)),
      ),
    ).toBe(true)
  })

  it("refuses a turn on another org's thread or an unknown one, writing nothing", async () => {
    const org = newOrg()
    const thread = await repos.run(repos.get(ThreadsRepo).create(org, null))
    const intruder = await repos.run(Effect.flip(startTurn(newOrg(), thread.thread_id, "x")))
    expect(intruder._tag).toBe("ThreadNotFound")
    const unknown = await repos.run(Effect.flip(startTurn(org, crypto.randomUUID() as ThreadId, "x")))
    expect(unknown._tag).toBe("ThreadNotFound")
    expect(await repos.run(repos.get(MessagesRepo).listByThread(org, thread.thread_id))).toEqual([])
  })

  it("sweeps pending and streaming replies to interrupted, leaving finished ones", async () => {
    const org = newOrg()
    const thread = await repos.run(repos.get(ThreadsRepo).create(org, null))
    const messages = repos.get(MessagesRepo)
    const done = await repos.run(startTurn(org, thread.thread_id, "done"))
    await repos.run(
      messages.finishTurn(done.assistantMessage, {
        content: "ok",
        status: "complete",
        usage: null,
        finishReason: "stop",
        errorCode: null,
      }),
    )
    await repos.run(startTurn(org, thread.thread_id, "left pending by a crash"))
    const swept = await repos.run(messages.sweepInterrupted)
    expect(swept).toBeGreaterThanOrEqual(1)
    const statuses = (await repos.run(messages.listByThread(org, thread.thread_id))).map((m) => m.status)
    expect(statuses).toEqual(["complete", "complete", "complete", "interrupted"])
    expect(await repos.run(messages.sweepInterrupted)).toBe(0)
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
