import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Replica, startCluster, stopCluster, stopReplica } from "../../scripts/replicas.ts"
import { mockReplyText } from "../../src/providers/mock.ts"
import {
  clusterDatabase,
  clusterSkipReason,
  dropPrefix,
  runPrefix,
  sleep,
  upstreamProcess,
} from "../support/cluster.ts"
import { openStream } from "../support/sse-client.ts"

/**
 * Three replica processes on one Redis and one PostgreSQL share their generations: identical
 * requests on different replicas make one upstream call and one stored turn, a stream started on
 * one resumes on another with `Last-Event-ID`, a cancel sent to a third stops it, and a replica
 * killed mid-reply leaves its listeners elsewhere a terminal event and its text stored.
 */

const skip = await clusterSkipReason()
if (skip !== undefined) console.warn(`skipping the multi-replica tests (test/cluster): ${skip}`)

const tokens = 60
const tokenIntervalMs = 50
const leaseMs = 1_000
const replyLeaseMs = 2_000
let upstream: Awaited<ReturnType<typeof upstreamProcess>>
let replicas: Array<Replica> = []
let database: ReturnType<typeof clusterDatabase> | undefined
const prefix = runPrefix("relay")
const org = `org-${crypto.randomUUID()}`
const headers = { "x-org-id": org, "content-type": "application/json" }

const post = async (replica: Replica, path: string, body: unknown) => {
  const response = await fetch(`${replica.url}${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  })
  return { status: response.status, json: (await response.json()) as Json }
}

const newThread = async (replica: Replica) =>
  (await post(replica, "/api/threads", {})).json.thread_id as string

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies of the API, read field by field in assertions
type Json = Record<string, any>

interface SseEvent {
  readonly id: number
  readonly event: string
  readonly data: Json
}

type Stream = ReturnType<typeof openStream>

const streamTurn = (replica: Replica, threadId: string, content: string) =>
  openStream(`${replica.url}/api/threads/${threadId}/messages/stream`, {
    method: "POST",
    headers: { ...headers, "x-dac-on-disconnect": "hold" },
    body: JSON.stringify({ role: "user", content, provider: "mock", model: "faststream-ttft" }),
  })

const reattach = (replica: Replica, threadId: string, requestId: string, lastEventId: number) =>
  openStream(`${replica.url}/api/threads/${threadId}/stream/${requestId}`, {
    headers: { ...headers, "last-event-id": String(lastEventId) },
  })

/** Its events once `enough` of them came; then it hangs up (a client dropping its stream). */
const readUntil = async (stream: Stream, enough: (events: ReadonlyArray<SseEvent>) => boolean) => {
  await stream.until((events) => enough(events as ReadonlyArray<SseEvent>))
  stream.abort()
  return [...stream.events] as Array<SseEvent>
}

/** Every event until the server ends the stream; `meanwhile` runs once `when` holds. */
const readAll = async (
  stream: Stream,
  when?: (events: ReadonlyArray<SseEvent>) => boolean,
  meanwhile?: () => void,
) => {
  if (when !== undefined) {
    await stream.until((events) => when(events as ReadonlyArray<SseEvent>))
    meanwhile?.()
  }
  await stream.done
  return stream.events as Array<SseEvent>
}

const deltas = (events: ReadonlyArray<SseEvent>) => events.filter((e) => e.event === "delta")
const textOf = (events: ReadonlyArray<SseEvent>) =>
  deltas(events)
    .map((e) => e.data.text)
    .join("")

const storedReply = async (replica: Replica, threadId: string) => {
  const response = await fetch(`${replica.url}/api/threads/${threadId}`, { headers })
  const thread = (await response.json()) as { messages: Array<Json> }
  return { all: thread.messages, reply: thread.messages.find((m) => m.role === "assistant") }
}

/** Polls until `check` holds (or `timeoutMs`); the time it took. */
const eventually = async (check: () => Promise<boolean>, timeoutMs: number) => {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start
    await sleep(50)
  }
  throw new Error(`not within ${timeoutMs} ms`)
}

describe.skipIf(skip !== undefined)("three replicas share their generations (Redis)", () => {
  beforeAll(async () => {
    // OpenAI's first byte after 2.5 s: every identical request has arrived before the reply does.
    upstream = await upstreamProcess({
      openai: { transcript: "openai-chat-stream", firstByteDelayMs: 2_500 },
    })
    database = clusterDatabase()
    replicas = [
      ...(await startCluster({
        replicas: 3,
        env: {
          ...upstream.env,
          DATABASE_URL: database.url,
          REDIS_URL: "redis://127.0.0.1:6379",
          REDIS_KEY_PREFIX: prefix,
          AUTH_MODE: "header",
          LOG_LEVEL: "Warn",
          MOCK_TOKENS: String(tokens),
          MOCK_TOKEN_INTERVAL_MS: String(tokenIntervalMs),
          SHARED_LEASE_MS: String(leaseMs),
          REPLY_LEASE_MS: String(replyLeaseMs),
        },
      })),
    ]
  }, 90_000)
  afterAll(async () => {
    await stopCluster(replicas)
    await upstream?.close()
    database?.drop()
    await dropPrefix("redis://127.0.0.1:6379", prefix)
  })

  it("300 identical sends spread over three replicas: 1 upstream call, 1 stored turn, the same reply", async () => {
    const threadId = await newThread(replicas[0]!)
    const body = {
      role: "user",
      content: "one question, asked 300 times",
      provider: "openai",
      model: "gpt-4o-mini",
    }
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        post(replicas[i % 3]!, `/api/threads/${threadId}/messages`, body),
      ),
    )
    expect(results.filter((r) => r.status !== 200).map((r) => r.json)).toEqual([])
    const replies = new Set(results.map((r) => r.json.assistant_message.message_id))
    const texts = new Set(results.map((r) => r.json.assistant_message.content))
    const users = new Set(results.map((r) => r.json.user_message.message_id))
    const roles = results.map((r) => r.json.coalesce as string)
    const stats = await upstream.stats()
    const { all, reply } = await storedReply(replicas[2]!, threadId)
    console.log(
      `300 identical sends on 3 replicas: ${stats.arrivals.openai?.length} upstream call(s), ` +
        `${roles.filter((r) => r === "leader").length} leader, ${roles.filter((r) => r === "follower").length} followers, ` +
        `${roles.filter((r) => r === "cache_hit").length} cache hits; ${all.length} stored messages`,
    )
    expect(stats.arrivals.openai).toHaveLength(1)
    expect(roles.filter((r) => r === "leader")).toHaveLength(1)
    expect(replies.size).toBe(1)
    expect(users.size).toBe(1)
    expect(texts.size).toBe(1)
    expect(all).toHaveLength(2)
    expect(reply!.status).toBe("complete")
    expect(reply!.content).toBe([...texts][0])
    expect(reply!.content.length).toBeGreaterThan(0)
  }, 60_000)

  it("a stream started on A resumes on B with Last-Event-ID: the whole text, no gap, no duplicate", async () => {
    const [a, b] = [replicas[0]!, replicas[1]!]
    const threadId = await newThread(a)
    const first = await readUntil(
      streamTurn(a, threadId, "resume me elsewhere"),
      (events) => deltas(events).length >= 10,
    )
    const requestId = first.find((e) => e.event === "meta")!.data.request_id as string
    const lastId = first.at(-1)!.id
    const rest = await readAll(reattach(b, threadId, requestId, lastId))
    const ids = [...first, ...rest].filter((e) => e.id >= 2).map((e) => e.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids).toEqual(ids.slice().sort((x, y) => x - y))
    // Consecutive: nothing skipped at the seam.
    expect(ids.at(-1)! - ids[0]! + 1).toBe(ids.length)
    expect(rest.at(-1)!.event).toBe("done")
    expect(textOf(first) + textOf(rest)).toBe(mockReplyText(tokens))
    const { reply } = await storedReply(b, threadId)
    expect(reply!.content).toBe(mockReplyText(tokens))
    // A, which ran it, shows it among its shared generations, followed from B (so mirrored).
    const ready = (await (await fetch(`${a.url}/ready`)).json()) as Json
    expect(ready.shared.generations.published).toBeGreaterThanOrEqual(1)
    expect(ready.shared.generations.mirrored).toBeGreaterThanOrEqual(1)
  }, 30_000)

  it("a stream resumed on B is stopped by a cancel sent to C, and the upstream call with it", async () => {
    const [a, b, c] = [replicas[0]!, replicas[1]!, replicas[2]!]
    const threadId = await newThread(a)
    const first = await readUntil(
      streamTurn(a, threadId, "cancel me from afar"),
      (events) => deltas(events).length >= 5,
    )
    const requestId = first.find((e) => e.event === "meta")!.data.request_id as string
    let cancelled: Promise<Json> | undefined
    const rest = await readAll(
      reattach(b, threadId, requestId, first.at(-1)!.id),
      (events) => deltas(events).length >= 5,
      () => {
        cancelled = post(c, `/api/threads/cancel/${requestId}`, {}).then((r) => r.json)
      },
    )
    expect(await cancelled).toEqual({ cancelled: true })
    expect(rest.at(-1)!.event).toBe("cancelled")
    // The owner (A) stopped: the reply is stored as cancelled, well short of the whole text.
    await eventually(async () => (await storedReply(c, threadId)).reply?.status === "cancelled", 5_000)
    const { reply } = await storedReply(c, threadId)
    expect(reply!.content.startsWith(textOf(first) + textOf(rest))).toBe(true)
    expect(reply!.content.length).toBeLessThan(mockReplyText(tokens).length)
  }, 30_000)

  it("two sends to one thread on two replicas run one at a time, the second asked with the first's reply", async () => {
    const [a, b] = [replicas[0]!, replicas[1]!]
    const threadId = await newThread(a)
    const timed = async (replica: Replica, content: string) => {
      const events = await readAll(streamTurn(replica, threadId, content))
      return { content, events, at: performance.now() }
    }
    const firstQuestion = "the first question, on A"
    const secondQuestion = "the second one, on B, right after"
    const started = performance.now()
    const [first, second] = await Promise.all([
      timed(a, firstQuestion),
      sleep(100).then(() => timed(b, secondQuestion)),
    ])
    const done = (events: ReadonlyArray<SseEvent>) => events.find((e) => e.event === "done")!
    expect(done(first.events)).toBeDefined()
    expect(done(second.events)).toBeDefined()
    // One at a time: the second took 2 whole replies' time, the first one's alone.
    const replyMs = tokens * tokenIntervalMs
    expect(first.at - started).toBeLessThan(replyMs * 1.8)
    expect(second.at - started).toBeGreaterThan(replyMs * 1.9)
    // The mock counts a quarter token a character of everything it was sent: the second turn was
    // sent the first question, its reply, and its own question.
    const quarter = (text: string) => Math.ceil(text.length / 4)
    expect(done(second.events).data.usage.input_tokens).toBe(
      quarter(firstQuestion) + quarter(mockReplyText(tokens)) + quarter(secondQuestion),
    )
    const { all } = await storedReply(a, threadId)
    expect(all.map((m) => [m.role, m.status])).toEqual([
      ["user", "complete"],
      ["assistant", "complete"],
      ["user", "complete"],
      ["assistant", "complete"],
    ])
  }, 30_000)

  it("a replica killed mid-reply: its listener on another replica gets a retryable error within the lease, and the text so far is stored as interrupted", async () => {
    const [b, c] = [replicas[1]!, replicas[2]!]
    const victim = replicas[0]!
    const threadId = await newThread(victim)
    const first = await readUntil(
      streamTurn(victim, threadId, "survive a crash"),
      (events) => deltas(events).length >= 3,
    )
    const requestId = first.find((e) => e.event === "meta")!.data.request_id as string
    let killedAt = 0
    const rest = await readAll(
      reattach(b, threadId, requestId, first.at(-1)!.id),
      (events) => deltas(events).length >= 3,
      () => {
        killedAt = Date.now()
        victim.process.kill("SIGKILL")
      },
    )
    const toTerminal = Date.now() - killedAt
    const terminal = rest.at(-1)!
    expect(terminal.event).toBe("error")
    expect(terminal.data).toMatchObject({ code: "replica_lost", retryable: true })
    const toInterrupted = await eventually(
      async () => (await storedReply(c, threadId)).reply?.status === "interrupted",
      3 * replyLeaseMs + 2_000,
    )
    const { reply } = await storedReply(c, threadId)
    console.log(
      `replica killed mid-reply: terminal event on another replica after ${toTerminal} ms (SHARED_LEASE_MS ${leaseMs}); ` +
        `reply interrupted in the store ${toInterrupted} ms later (REPLY_LEASE_MS ${replyLeaseMs})`,
    )
    expect(toTerminal).toBeLessThan(leaseMs * 2 + 1_000)
    // What the store has is the text as last written (every REPLY_SAVE_INTERVAL_MS): a prefix of
    // what the listeners saw, at least what was sent before the listener moved to B.
    const seen = textOf(first) + textOf(rest)
    expect(seen.startsWith(reply!.content)).toBe(true)
    expect(reply!.content.length).toBeGreaterThan(0)
    await stopReplica(victim)
    replicas = replicas.slice(1)
  }, 40_000)
})
