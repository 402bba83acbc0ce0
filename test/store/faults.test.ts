import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { RequestLog } from "../../src/telemetry/request-log.ts"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts"
import { loadTranscript, withBody } from "../support/wire.ts"

/**
 * Faults of the store. The database cut away under a running gateway, on real PostgreSQL (skipped on the embedded store,
 * which runs inside the gateway and cannot be cut apart from it). The gateway reaches a fresh
 * database through a TCP proxy that the tests cut (every connection reset, new ones refused) and
 * restore; a direct connection, not through the proxy, reads what was stored.
 */
const onPostgres = inject("backend") === "postgres"

/** An OpenAI stream of `pieces` deltas, one write each (the fake upstream paces them). */
const openaiStream = (pieces: ReadonlyArray<string>) => {
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({
      id: "chatcmpl-fault",
      object: "chat.completion.chunk",
      created: 1,
      model: "gpt-4o-mini",
      choices: [{ index: 0, delta, finish_reason: finish }],
    })}\n\n`
  const events = [
    chunk({ role: "assistant", content: "" }, null),
    ...pieces.map((content) => chunk({ content }, null)),
    chunk({}, "stop"),
    "data: [DONE]\n\n",
  ]
  const body = events.join("")
  const split: Array<number> = []
  let at = 0
  for (const event of events) {
    at += Buffer.byteLength(event)
    split.push(at)
  }
  return { transcript: withBody(loadTranscript("openai-chat-stream"), body, "fault stream"), split }
}

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i} `)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!onPostgres)("the database cut away (PostgreSQL behind a TCP proxy)", () => {
  const databaseName = `dac_faults_${crypto.randomUUID().replaceAll("-", "")}`
  const suiteUrl = new URL(inject("databaseUrl"))
  let admin: {
    run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
    close: () => Promise<void>
  }
  let direct: typeof admin
  let proxy: TcpProxy
  let upstream: FakeUpstream
  let gateway: RunningGateway

  const connectTo = async (url: URL) => {
    const scope = Effect.runSync(Scope.make())
    const context = await Effect.runPromise(
      Layer.buildWithScope(PgClient.layer({ url: Redacted.make(url.toString()), maxConnections: 2 }), scope),
    )
    return {
      run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
        Effect.runPromise(Effect.provideContext(effect, context)),
      close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
    }
  }

  beforeAll(async () => {
    admin = await connectTo(suiteUrl)
    await admin.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE DATABASE ${databaseName}`)),
    )
    const fresh = new URL(suiteUrl)
    fresh.pathname = `/${databaseName}`
    direct = await connectTo(fresh)
    proxy = await startTcpProxy({ host: suiteUrl.hostname, port: Number(suiteUrl.port || 5432) })
    const proxied = new URL(fresh)
    proxied.hostname = "127.0.0.1"
    proxied.port = String(proxy.port)
    upstream = await startFakeUpstream()
    gateway = await startGateway({
      ...upstream.env(),
      DATABASE_URL: proxied.toString(),
      DATABASE_POOL_SIZE: "4",
      // A failure is shared for this long: short, so a retry after recovery leads a new turn.
      COALESCE_ERROR_TTL_MS: "200",
    })
  })
  afterAll(async () => {
    await gateway?.close()
    await upstream?.close()
    await proxy?.close()
    await direct?.close()
    await admin
      ?.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql.unsafe(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`),
        ),
      )
      .finally(() => admin.close())
  })

  const messagesOf = (threadId: string) =>
    direct.run(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) =>
          sql<{ role: string; status: string; content: string; error_code: string | null }>`
            SELECT role, status, content, error_code FROM messages WHERE thread_id = ${threadId} ORDER BY seq`,
      ),
    )

  const newThread = async (org: string) => {
    const created = await api(gateway.baseUrl, org).post("/api/threads", {})
    expect(created.status).toBe(201)
    return created.json.thread_id as string
  }

  const send = (
    org: string,
    threadId: string,
    content: string,
    model = "faststream-ttft",
    provider = "mock",
  ) =>
    api(gateway.baseUrl, org).post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content,
      provider,
      model,
    })

  const streamTurn = (org: string, threadId: string, content: string, model: string, provider: string) =>
    openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify({ role: "user", content, provider, model }),
      signal: AbortSignal.timeout(30_000),
    })

  /** Resolves with the stream's end, or "hung" when it did not end within `ms`. */
  const endedWithin = (stream: ReturnType<typeof openStream>, ms: number) =>
    Promise.race([stream.done.then(() => "ended" as const), sleep(ms).then(() => "hung" as const)])

  const terminal = (stream: ReturnType<typeof openStream>) =>
    stream.events.find((e) => e.event === "done" || e.event === "error" || e.event === "cancelled")

  /** A slow OpenAI reply (20 deltas, 50 ms apart: a second in flight). */
  const slowReply = () => {
    const { transcript, split } = openaiStream(words(20))
    upstream.on("openai", { transcript, split, writeDelayMs: 50 })
  }

  /** After a cut is over, a new turn on the same thread succeeds at once: no restart needed. */
  const expectRecovered = async (org: string, threadId: string) => {
    const again = await send(org, threadId, `recovered ${crypto.randomUUID()}`)
    expect(again.status).toBe(200)
    expect(again.json.assistant_message.status).toBe("complete")
    const health = await fetch(`${gateway.baseUrl}/ready`)
    expect(health.status).toBe(200)
  }

  it("a reply in flight while the database goes and comes back completes, and is stored whole", async () => {
    const org = "org-faults-mid"
    const threadId = await newThread(org)
    slowReply()
    const stream = streamTurn(org, threadId, "mid-reply cut", "gpt-4o-mini", "openai")
    await stream.until((events) => events.filter((e) => e.event === "delta").length >= 3)
    proxy.cut()
    await sleep(200)
    proxy.restore()
    expect(await endedWithin(stream, 15_000)).toBe("ended")
    expect(terminal(stream)?.event).toBe("done")
    expect(stream.text()).toBe(words(20).join(""))
    expect(await messagesOf(threadId)).toEqual([
      { role: "user", status: "complete", content: "mid-reply cut", error_code: null },
      { role: "assistant", status: "complete", content: words(20).join(""), error_code: null },
    ])
    await expectRecovered(org, threadId)
  })

  it("a request-log flush during an outage neither fails a reply nor loses the rows", async () => {
    const org = "org-faults-log"
    const requestLog = Context.get(gateway.context as Context.Context<RequestLog>, RequestLog)
    await Effect.runPromise(requestLog.flush)
    const ids: Array<string> = []
    const complete = async (content: string) => {
      const completion = await api(gateway.baseUrl, org).post("/v1/chat/completions", {
        model: "mock/faststream-ttft",
        messages: [{ role: "user", content }],
      })
      expect(completion.status).toBe(200)
      ids.push(String(completion.json.id).replace(/^chatcmpl-/, ""))
    }
    for (let i = 0; i < 5; i++) await complete(`before the outage ${i}`)
    // The cut lands while a flush of those rows is on its way to the database.
    const inFlight = Effect.runPromise(requestLog.flush)
    await sleep(0)
    proxy.cut()
    await inFlight
    try {
      // Stateless completions touch no table but the request log: they still answer.
      for (let i = 0; i < 5; i++) {
        await complete(`during the outage ${i}`)
      }
      // Flushes meet the cut database (the timer's, and this one): nothing crashes, the rows wait.
      await Effect.runPromise(requestLog.flush)
      await sleep(600)
      expect(requestLog.backlog()).toBeGreaterThanOrEqual(5)
      expect((await fetch(`${gateway.baseUrl}/health`)).status).toBe(200)
    } finally {
      proxy.restore()
    }
    await Effect.runPromise(requestLog.flush)
    expect(requestLog.backlog()).toBe(0)
    const stored = await direct.run(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ request_id: string }>`SELECT request_id FROM request_log WHERE org_id = ${org}`,
      ),
    )
    expect(stored.map((row) => row.request_id).sort()).toEqual([...ids].sort())
  })

  // Waits for the engine fix: no store call has a deadline yet. Measured: with the database stalled
  // (connections open, nothing answered) a turn waited 30 s and more (until the client gave up; it
  // completed once the database answered again), `/ready` answered 503 after 5 s.
  describe("a database that hangs", () => {
    it("a turn while the database hangs answers 503 store_unavailable in bounded time, then recovers", async () => {
      const org = "org-faults-stall"
      const threadId = await newThread(org)
      proxy.stall()
      try {
        const answered = await Promise.race([
          send(org, threadId, "while stalled"),
          sleep(20_000).then(() => undefined),
        ])
        expect(answered?.status).toBe(503)
        expect(answered?.json.error).toMatchObject({ code: "store_unavailable", retryable: true })
      } finally {
        proxy.restore()
      }
      await expectRecovered(org, threadId)
    })
  })

  // Before the engine's fix (main e768c8a) the turn's start answered 500 internal_error (the stream
  // POST too, before any event), and a cut final write left every listener hanging and the reply
  // `pending` for good.
  describe("the turn's start and its final write", () => {
    const expectStoreUnavailable = (response: Awaited<ReturnType<ReturnType<typeof api>["post"]>>) => {
      expect(response.status).toBe(503)
      expect(response.json.error.code).toBe("store_unavailable")
      expect(response.json.error.retryable).toBe(true)
    }

    it("a turn started while the database is cut: 503 store_unavailable, nothing stored, then recovery", async () => {
      const org = "org-faults-start"
      const threadId = await newThread(org)
      proxy.cut()
      try {
        expectStoreUnavailable(await send(org, threadId, "while cut"))
        expectStoreUnavailable(await api(gateway.baseUrl, org).post("/api/threads", {}))
        // A stream: a 503 before it starts, or a terminal retryable `error` event; never a 500.
        const stream = streamTurn(org, threadId, "while cut, streaming", "faststream-ttft", "mock")
        expect(await endedWithin(stream, 15_000)).toBe("ended")
        console.log(
          `[matrix] stream start while cut: ${stream.status} ${JSON.stringify(stream.events.map((e) => e.event))}`,
        )
        if (stream.status === 200) {
          expect(terminal(stream)?.event).toBe("error")
          expect(terminal(stream)?.data).toMatchObject({ code: "store_unavailable", retryable: true })
        } else {
          expect(stream.status).toBe(503)
        }
      } finally {
        proxy.restore()
      }
      expect(await messagesOf(threadId)).toEqual([])
      // The same request again leads a new turn (its coalescing key was released).
      await sleep(300)
      const retried = await send(org, threadId, "while cut")
      expect(retried.status).toBe(200)
      await expectRecovered(org, threadId)
    })

    it("a final write that meets a cut database ends every listener with a retryable error", async () => {
      const org = "org-faults-final"
      const threadId = await newThread(org)
      slowReply()
      const leader = streamTurn(org, threadId, "final write cut", "gpt-4o-mini", "openai")
      await leader.until((events) => events.filter((e) => e.event === "delta").length >= 1)
      // Two followers of the same turn: a streaming one and one waiting for the whole reply.
      const follower = streamTurn(org, threadId, "final write cut", "gpt-4o-mini", "openai")
      const waiting = send(org, threadId, "final write cut", "gpt-4o-mini", "openai")
      await leader.until((events) => events.filter((e) => e.event === "delta").length >= 3)
      proxy.cut()
      try {
        for (const stream of [leader, follower]) {
          expect(await endedWithin(stream, 20_000)).toBe("ended")
          expect(terminal(stream)?.event).toBe("error")
          expect(terminal(stream)?.data).toMatchObject({ code: "store_unavailable", retryable: true })
        }
        expectStoreUnavailable(await waiting)
      } finally {
        proxy.restore()
      }
      // No reply was acknowledged, so none is lost; the user's message (stored at the start) is kept,
      // and once the store answers again the reply is settled as failed, keeping its text so far.
      let stored = await messagesOf(threadId)
      for (let i = 0; i < 50 && stored[1]?.status !== "failed"; i++) {
        await sleep(100)
        stored = await messagesOf(threadId)
      }
      expect(stored[0]).toMatchObject({ role: "user", status: "complete", content: "final write cut" })
      expect(stored[1]).toMatchObject({
        role: "assistant",
        status: "failed",
        error_code: "store_unavailable",
      })
      expect(words(20).join("").startsWith(stored[1]!.content)).toBe(true)
      await sleep(300)
      const retried = await send(org, threadId, "final write cut", "gpt-4o-mini", "openai")
      expect(retried.status).toBe(200)
      await expectRecovered(org, threadId)
    })
  })
})

// On both backends: PostgreSQL's text (PGlite's too) cannot hold U+0000, and retrying cannot help.
describe("a U+0000 in the upstream's reply", () => {
  let upstream: FakeUpstream
  let gateway: RunningGateway
  beforeAll(async () => {
    upstream = await startFakeUpstream()
    gateway = await startGateway(upstream.env())
  })
  afterAll(async () => {
    await gateway?.close()
    await upstream?.close()
  })

  it("ends the stream with a terminal event, and the message is settled", async () => {
    const client = api(gateway.baseUrl, "org-faults-nul")
    const threadId = (await client.post("/api/threads", {})).json.thread_id as string
    const { transcript, split } = openaiStream(["before ", "a\u0000b", " after"])
    upstream.on("openai", { transcript, split })
    const stream = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": "org-faults-nul", "content-type": "application/json" },
      body: JSON.stringify({ role: "user", content: "say a NUL", provider: "openai", model: "gpt-4o-mini" }),
    })
    const ended = await Promise.race([stream.done.then(() => "ended"), sleep(15_000).then(() => "hung")])
    expect(ended).toBe("ended")
    expect(stream.events.at(-1)?.event).toBe("done")
    // U+FFFD in its place, in the stream and in the store alike (PostgreSQL's text cannot hold it).
    expect(stream.text()).toBe("before a\uFFFDb after")
    const thread = await client.get(`/api/threads/${threadId}`)
    expect(thread.json.messages[1]).toMatchObject({ status: "complete", content: "before a\uFFFDb after" })
    const after = await client.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "and now?",
      provider: "mock",
      model: "faststream-ttft",
    })
    expect(after.status).toBe(200)
  })
})
