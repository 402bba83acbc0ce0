import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { loadTranscript, type Transcript } from "./wire.ts"

/**
 * A real HTTP server on 127.0.0.1 (random port) that plays provider transcripts back, for tests
 * and benchmarks that need real sockets between DAC and "the provider".
 *
 * Routes, one prefix per provider (point `<P>_BASE_URL` at `baseUrl(provider)`):
 *
 * | provider   | base URL                    | POST path below the origin                                 |
 * | ---------- | --------------------------- | ---------------------------------------------------------- |
 * | openai     | `{origin}/openai/v1`        | `/openai/v1/chat/completions`                              |
 * | perplexity | `{origin}/perplexity`       | `/perplexity/chat/completions`                             |
 * | openrouter | `{origin}/openrouter/api/v1`| `/openrouter/api/v1/chat/completions`                      |
 * | anthropic  | `{origin}/anthropic/v1`     | `/anthropic/v1/messages`                                   |
 * | gemini     | `{origin}/gemini/v1beta`    | `/gemini/v1beta/models/{model}:streamGenerateContent?…` (or `:generateContent`) |
 *
 * Each POST on a route is answered by the provider's current `Reply` (or `Script`, called per
 * request), by default its main streaming transcript. Any other method is answered 204 (adapters
 * warm their pool with a HEAD); an unknown path, 404. Every request is recorded, with the time its
 * socket closed, so a test can prove that an upstream call was really aborted.
 */

export const fakeProviders = ["openai", "anthropic", "gemini", "perplexity", "openrouter"] as const
export type FakeProvider = (typeof fakeProviders)[number]

const routes: Record<FakeProvider, { readonly base: string; readonly post: RegExp }> = {
  openai: { base: "/openai/v1", post: /^\/openai\/v1\/chat\/completions$/ },
  perplexity: { base: "/perplexity", post: /^\/perplexity\/chat\/completions$/ },
  openrouter: { base: "/openrouter/api/v1", post: /^\/openrouter\/api\/v1\/chat\/completions$/ },
  anthropic: { base: "/anthropic/v1", post: /^\/anthropic\/v1\/messages$/ },
  gemini: {
    base: "/gemini/v1beta",
    post: /^\/gemini\/v1beta\/models\/[^/:]+:(streamGenerateContent|generateContent)$/,
  },
}

/** What each provider answers until told otherwise. */
export const defaultTranscripts: Record<FakeProvider, string> = {
  openai: "openai-chat-stream",
  anthropic: "anthropic-messages-stream",
  gemini: "gemini-stream",
  perplexity: "perplexity-stream",
  openrouter: "openrouter-stream",
}

/** How to answer one request. Status, headers and body come from the transcript. */
export interface Reply {
  /** A file name in ../shared/wire (without `.txt`), or a transcript built in the test. */
  readonly transcript: string | Transcript
  /** Cut the body into several writes: at these byte offsets, or at random sizes of 1..`maxWrite` bytes. */
  readonly split?: "random" | ReadonlyArray<number> | undefined
  /** Seed of the random split (default 1), so a failing run can be replayed. */
  readonly seed?: number | undefined
  /** Largest random write (default 64 bytes). */
  readonly maxWrite?: number | undefined
  /** Wait before the status line and headers. */
  readonly headersDelayMs?: number | undefined
  /** Wait after the headers, before the first body byte. */
  readonly firstByteDelayMs?: number | undefined
  /** Wait between two writes (without it, writes are still separate: one event-loop turn apart). */
  readonly writeDelayMs?: number | undefined
  /** Never answer at all. */
  readonly hangBeforeHeaders?: boolean | undefined
  /** Send the headers and this many body bytes, then stall with the connection open. */
  readonly hangAfterBytes?: number | undefined
  /** Send the headers and this many body bytes, then destroy the socket (a connection cut mid-stream). */
  readonly cutAfterBytes?: number | undefined
}

/** Decides the reply per request; `index` counts this provider's POSTs from 0 (to answer 429 then 200, …). */
export type Script = (request: RecordedRequest, index: number) => Reply

/**
 * OpenAI's first answer succeeds but says its request limit is used up until `reset` (its
 * `x-ratelimit-reset-requests`, e.g. "800ms" or "999h"); every later one is a plain success.
 */
export const limitUsedUpOnFirstCall =
  (reset: string): Script =>
  (_, index) => {
    if (index > 0) return { transcript: "openai-chat-stream" }
    const ok = loadTranscript("openai-chat-stream")
    return {
      transcript: {
        ...ok,
        headers: [
          ...ok.headers,
          ["x-ratelimit-remaining-requests", "0"],
          ["x-ratelimit-reset-requests", reset],
        ],
      },
    }
  }

export interface RecordedRequest {
  readonly provider: FakeProvider | undefined
  readonly method: string
  /** Path and query, as sent. */
  readonly url: string
  readonly pathname: string
  readonly query: URLSearchParams
  readonly headers: IncomingHttpHeaders
  /** The body parsed as JSON, or its text when it is not JSON. */
  readonly body: unknown
  /** `performance.now()` when the request arrived. */
  readonly receivedAt: number
  /** The connection it came on (1, 2, … in accept order): equal ids mean a kept-alive socket was reused. */
  readonly socket: number
}

export interface FakeUpstream {
  /** `http://127.0.0.1:{port}` */
  readonly origin: string
  readonly baseUrl: (provider: FakeProvider) => string
  /** `<P>_BASE_URL` and `<P>_API_KEY` (`test-key-{provider}`) for every provider, for a gateway's config. */
  readonly env: () => Record<string, string>
  /** Sets how a provider answers from now on: a fixed reply or a script. */
  readonly on: (provider: FakeProvider, reply: Reply | Script) => void
  /** Every request so far, warm-ups included, in arrival order. */
  readonly requests: ReadonlyArray<RecordedRequest>
  /** The POSTs so far, of one provider or all. */
  readonly calls: (provider?: FakeProvider) => ReadonlyArray<RecordedRequest>
  /** `performance.now()` when the request's socket closed; waits for it (rejects after `timeoutMs`). */
  readonly socketClosedAt: (request: RecordedRequest, timeoutMs?: number) => Promise<number>
  /** A provider's POSTs being answered right now, and the most at once since the last reset. */
  readonly concurrency: (provider: FakeProvider) => { readonly now: number; readonly max: number }
  /** Back to the default replies, records cleared. */
  readonly reset: () => void
  readonly close: () => Promise<void>
}

/** Response headers the server's own framing replaces. */
const framingHeaders = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"])

/** mulberry32: small, seedable, good enough to pick write sizes. */
const randomFrom = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const pieces = (body: Uint8Array, reply: Reply): ReadonlyArray<Uint8Array> => {
  if (body.length === 0) return []
  if (reply.split === undefined) return [body]
  const cuts: Array<number> = []
  if (reply.split === "random") {
    const random = randomFrom(reply.seed ?? 1)
    const max = Math.max(1, reply.maxWrite ?? 64)
    for (let at = 1 + Math.floor(random() * max); at < body.length; at += 1 + Math.floor(random() * max))
      cuts.push(at)
  } else {
    cuts.push(...[...new Set(reply.split)].filter((at) => at > 0 && at < body.length).sort((a, b) => a - b))
  }
  const out: Array<Uint8Array> = []
  let start = 0
  for (const cut of [...cuts, body.length]) {
    out.push(body.subarray(start, cut))
    start = cut
  }
  return out
}

const readBody = (request: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => parts.push(chunk))
    request.on("end", () => resolve(Buffer.concat(parts).toString("utf8")))
    request.on("error", reject)
  })

const parseBody = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const providerOf = (pathname: string): FakeProvider | undefined =>
  fakeProviders.find(
    (provider) => pathname === routes[provider].base || pathname.startsWith(`${routes[provider].base}/`),
  )

export const startFakeUpstream = async (): Promise<FakeUpstream> => {
  const requests: Array<RecordedRequest> = []
  const replies = new Map<FakeProvider, Reply | Script>()
  const counts = new Map<FakeProvider, number>()
  const socketIds = new WeakMap<Socket, number>()
  const closedAt = new Map<number, number>()
  const closeWaiters = new Map<number, Array<(at: number) => void>>()
  const open = new Set<Socket>()
  let nextSocket = 0
  const active = new Map<FakeProvider, { now: number; max: number }>()

  const play = async (response: ServerResponse, reply: Reply) => {
    const transcript =
      typeof reply.transcript === "string" ? loadTranscript(reply.transcript) : reply.transcript
    const timers = new Set<NodeJS.Timeout>()
    response.on("close", () => {
      for (const timer of timers) clearTimeout(timer)
    })
    const gone = () => response.destroyed || response.socket === null
    const wait = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer)
          resolve()
        }, ms)
        timers.add(timer)
      })
    const write = (chunk: Uint8Array) => new Promise<unknown>((resolve) => response.write(chunk, resolve))

    if (reply.hangBeforeHeaders) return
    if (reply.headersDelayMs) await wait(reply.headersDelayMs)
    if (gone()) return
    const headers = transcript.headers.filter(([name]) => !framingHeaders.has(name)).flat()
    response.writeHead(transcript.status, transcript.statusText, headers)
    response.flushHeaders()

    const limit = reply.cutAfterBytes ?? reply.hangAfterBytes
    const body = limit === undefined ? transcript.body : transcript.body.subarray(0, limit)
    if (reply.firstByteDelayMs) await wait(reply.firstByteDelayMs)
    let first = true
    for (const piece of pieces(body, reply)) {
      if (!first) await (reply.writeDelayMs ? wait(reply.writeDelayMs) : new Promise(setImmediate))
      first = false
      if (gone()) return
      await write(piece)
    }
    if (gone()) return
    if (reply.cutAfterBytes !== undefined) return void response.socket?.destroy()
    if (reply.hangAfterBytes !== undefined) return
    response.end()
  }

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", "http://fake")
    const provider = providerOf(url.pathname)
    const text = await readBody(request)
    const recorded: RecordedRequest = {
      provider,
      method: request.method ?? "GET",
      url: request.url ?? "/",
      pathname: url.pathname,
      query: url.searchParams,
      headers: request.headers,
      body: text.length === 0 ? undefined : parseBody(text),
      receivedAt: performance.now(),
      socket: socketIds.get(request.socket) ?? 0,
    }
    requests.push(recorded)
    if (provider === undefined || (request.method === "POST" && !routes[provider].post.test(url.pathname))) {
      response.writeHead(404, { "content-type": "application/json" })
      return void response.end(
        JSON.stringify({ error: { message: `no route for ${request.method} ${url.pathname}` } }),
      )
    }
    if (request.method !== "POST") return void response.writeHead(204).end()
    const index = counts.get(provider) ?? 0
    counts.set(provider, index + 1)
    const load = active.get(provider) ?? { now: 0, max: 0 }
    active.set(provider, load)
    load.now++
    load.max = Math.max(load.max, load.now)
    response.on("close", () => load.now--)
    const configured = replies.get(provider) ?? { transcript: defaultTranscripts[provider] }
    await play(response, typeof configured === "function" ? configured(recorded, index) : configured)
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" })
      response.end(String(error))
    })
  })
  server.on("connection", (socket) => {
    const id = ++nextSocket
    socketIds.set(socket, id)
    open.add(socket)
    socket.setNoDelay(true)
    socket.on("close", () => {
      const at = performance.now()
      open.delete(socket)
      closedAt.set(id, at)
      for (const resolve of closeWaiters.get(id) ?? []) resolve(at)
      closeWaiters.delete(id)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    origin,
    baseUrl: (provider) => origin + routes[provider].base,
    env: () =>
      Object.fromEntries(
        fakeProviders.flatMap((provider) => [
          [`${provider.toUpperCase()}_BASE_URL`, origin + routes[provider].base],
          [`${provider.toUpperCase()}_API_KEY`, `test-key-${provider}`],
        ]),
      ),
    on: (provider, reply) => {
      replies.set(provider, reply)
    },
    requests,
    calls: (provider) =>
      requests.filter((r) => r.method === "POST" && (provider === undefined || r.provider === provider)),
    socketClosedAt: (request, timeoutMs = 5_000) => {
      const known = closedAt.get(request.socket)
      if (known !== undefined) return Promise.resolve(known)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`socket ${request.socket} still open after ${timeoutMs} ms`)),
          timeoutMs,
        )
        const waiters = closeWaiters.get(request.socket) ?? []
        waiters.push((at) => {
          clearTimeout(timer)
          resolve(at)
        })
        closeWaiters.set(request.socket, waiters)
      })
    },
    concurrency: (provider) => ({ now: active.get(provider)?.now ?? 0, max: active.get(provider)?.max ?? 0 }),
    reset: () => {
      for (const load of active.values()) load.max = load.now
      replies.clear()
      counts.clear()
      requests.length = 0
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/** The fake as a scoped resource: closed with the scope. */
export const fakeUpstream = Effect.acquireRelease(
  Effect.promise(() => startFakeUpstream()),
  (fake) => Effect.promise(() => fake.close()),
)
