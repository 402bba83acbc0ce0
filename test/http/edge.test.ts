import { request as httpRequest } from "node:http"
import { connect, createServer, type Socket } from "node:net"
import { Schema } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { freePort } from "../../scripts/free-port.ts"
import { ChatRequest } from "../../src/domain/chat.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

/** Bounds at the edge: what cannot be stored, logged or keyed is refused with a 400 naming the field. */

let gateway: RunningGateway
let closedPort: number
const org = `org-${crypto.randomUUID()}`

beforeAll(async () => {
  closedPort = await freePort()
  gateway = await startGateway({
    MOCK_TOKENS: "3",
    MOCK_TTFT_MS: "1",
    MOCK_TOKEN_INTERVAL_MS: "1",
    MAX_TITLE_CHARS: "50",
    MAX_MESSAGES_PER_REQUEST: "5",
    MAX_CONTENT_CHARS: "1000",
    MAX_BODY_BYTES: "65536",
    MAX_HEADER_BYTES: "8192",
    OPENAI_API_KEY: "sk-test",
    OPENAI_BASE_URL: `http://127.0.0.1:${closedPort}/v1`,
    UPSTREAM_MAX_ATTEMPTS: "1",
  })
})
afterAll(() => gateway?.close())

const client = () => api(gateway.baseUrl, org)
const turn = (extra: Record<string, unknown> = {}) => ({
  role: "user",
  content: "hello",
  provider: "mock",
  model: "faststream-ttft",
  ...extra,
})

const expectRefused = (
  response: { status: number; json: { error: { code: string; message: string } } },
  field: string,
) => {
  expect(response.status).toBe(400)
  expect(response.json.error.code).toBe("invalid_request")
  expect(response.json.error.message).toContain(field)
}

/** OpenAI's error body, with `param` naming the field when there is one. */
const expectOpenAiError = (
  response: { status: number; json: { error: Record<string, unknown> } },
  status: number,
  code: string,
  param: string | null = null,
) => {
  expect(response.status).toBe(status)
  expect(Object.keys(response.json.error).sort()).toEqual(["code", "message", "param", "type"])
  expect(response.json.error).toMatchObject({ code, param })
  expect(typeof response.json.error.message).toBe("string")
}

/** A raw request over a socket: header bytes no fetch would send. */
const rawRequest = (text: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const url = new URL(gateway.baseUrl)
    const socket = connect(Number(url.port), url.hostname, () => socket.end(text))
    let reply = ""
    socket.setEncoding("latin1")
    socket.on("data", (chunk) => {
      reply += chunk
    })
    socket.on("error", reject)
    socket.on("close", () => {
      const [head = "", body = ""] = reply.split("\r\n\r\n")
      resolve({ status: Number(head.split(" ")[1]), body })
    })
  })

describe("text PostgreSQL cannot store", () => {
  const hostile = { nul: "a\u0000b", "lone high surrogate": "a\uD800b", "lone low surrogate": "\uDC00z" }

  for (const [name, text] of Object.entries(hostile)) {
    it(`refuses a ${name} in every stored field, naming it`, async () => {
      expectRefused(await client().post("/api/threads", { title: text }), "title")
      const thread = (await client().post("/api/threads", { title: "t" })).json.thread_id as string
      const path = `/api/threads/${thread}/messages`
      expectRefused(await client().post(path, turn({ content: text })), "content")
      expectRefused(await client().post(path, turn({ provider: text })), "provider")
      expectRefused(await client().post(path, turn({ model: text })), "model")
      expectRefused(await client().post(path, turn({ stop: ["ok", text] })), "stop")
      expectRefused(await client().post(`${path}/stream`, turn({ content: text })), "content")
      // Refused, not altered: nothing was stored.
      expect((await client().get(`/api/threads/${thread}`)).json.messages).toEqual([])

      const v1 = (body: Record<string, unknown>) => client().post("/v1/chat/completions", body)
      const messages = [
        { role: "system", content: "be brief" },
        { role: "user", content: text },
      ]
      expectOpenAiError(
        await v1({ model: "mock/faststream-ttft", messages }),
        400,
        "invalid_request",
        "messages[1].content",
      )
      expectOpenAiError(
        await v1({
          model: "mock/faststream-ttft",
          messages: [{ role: "user", content: [{ type: "text", text }] }],
        }),
        400,
        "invalid_request",
        "messages[0].content[0].text",
      )
      expectOpenAiError(
        await v1({ model: "mock/faststream-ttft", messages: [{ role: "user", content: "hi" }], stop: text }),
        400,
        "invalid_request",
        "stop",
      )
    })
  }

  it("says what is wrong, and where", async () => {
    const thread = (await client().post("/api/threads")).json.thread_id as string
    const refused = await client().post(`/api/threads/${thread}/messages`, turn({ content: "a\u0000" }))
    expect(refused.json.error.message).toBe(
      "invalid body: content: must not contain U+0000 or unpaired UTF-16 surrogates (not storable text)",
    )
  })

  it("accepts emoji and other well-formed text (surrogate pairs are fine)", async () => {
    const created = await client().post("/api/threads", { title: "ok 😀 ünïcødé" })
    expect(created.status).toBe(201)
    const sent = await client().post(
      `/api/threads/${created.json.thread_id}/messages`,
      turn({ content: "hi 😀" }),
    )
    expect(sent.status).toBe(200)
  })
})

describe("field bounds", () => {
  it("titles up to MAX_TITLE_CHARS", async () => {
    expect((await client().post("/api/threads", { title: "x".repeat(50) })).status).toBe(201)
    const long = await client().post("/api/threads", { title: "x".repeat(51) })
    expectRefused(long, "title")
    expect(long.json.error.message).toContain("MAX_TITLE_CHARS")
  })

  it("model names: up to 256 characters of letters, digits and . _ - : / @ +", async () => {
    const isRequest = Schema.is(ChatRequest)
    for (const model of [
      "gpt-4o-mini",
      "claude-sonnet-4-5",
      "meta-llama/llama-3-8b:free",
      "models/gemini-2.0-flash",
      "org@v1+beta",
      "m".repeat(256),
    ]) {
      expect(isRequest(turn({ model })), model).toBe(true)
    }
    const thread = (await client().post("/api/threads")).json.thread_id as string
    for (const model of ["m".repeat(257), "gpt 4", "a;drop", "modèle", "a\nb"]) {
      expectRefused(await client().post(`/api/threads/${thread}/messages`, turn({ model })), "model")
    }
    expectOpenAiError(
      await client().post("/v1/chat/completions", {
        model: `mock/${"m".repeat(300)}`,
        messages: [{ role: "user", content: "hi" }],
      }),
      400,
      "invalid_request",
      "model",
    )
  })

  it("Idempotency-Key: at most 255 characters of printable ASCII", async () => {
    const thread = (await client().post("/api/threads")).json.thread_id as string
    const path = `/api/threads/${thread}/messages`
    for (const key of ["k".repeat(256), "clé"]) {
      const refused = await client().post(path, turn(), { "idempotency-key": key })
      expectRefused(refused, "idempotency-key")
      expectOpenAiError(
        await client().post(
          "/v1/chat/completions",
          { model: "mock/faststream-ttft", messages: [{ role: "user", content: "hi" }] },
          { "idempotency-key": key },
        ),
        400,
        "invalid_request",
      )
    }
    expect((await client().post(path, turn(), { "idempotency-key": "k".repeat(255) })).status).toBe(200)
  })

  it("a bad x-org-id is a 400 on /v1 too", async () => {
    const response = await api(gateway.baseUrl, "bad org!").post("/v1/chat/completions", {
      model: "mock/faststream-ttft",
      messages: [{ role: "user", content: "hi" }],
    })
    expectOpenAiError(response, 400, "invalid_org_id")
  })
})

describe("/v1 answers every error in OpenAI's shape", () => {
  const hi = [{ role: "user", content: "hi" }]

  it("messages up to MAX_MESSAGES_PER_REQUEST, each within MAX_CONTENT_CHARS", async () => {
    const six = Array.from({ length: 6 }, () => ({ role: "user", content: "hi" }))
    const many = await client().post("/v1/chat/completions", { model: "mock/faststream-ttft", messages: six })
    expectOpenAiError(many, 400, "invalid_request", "messages")
    expect(many.json.error.message).toContain("MAX_MESSAGES_PER_REQUEST")
    const long = await client().post("/v1/chat/completions", {
      model: "mock/faststream-ttft",
      messages: [{ role: "user", content: "x".repeat(1001) }, ...hi],
    })
    expectOpenAiError(long, 413, "content_too_large", "messages[0].content")
  })

  it("413, 415, invalid JSON and unknown routes", async () => {
    const big = await client().post("/v1/chat/completions", {
      model: "mock/faststream-ttft",
      messages: hi,
      pad: "x".repeat(70_000),
    })
    expectOpenAiError(big, 413, "body_too_large")
    expectOpenAiError(
      await client().post("/v1/chat/completions", "hello", { "content-type": "text/plain" }),
      415,
      "unsupported_media_type",
    )
    expectOpenAiError(await client().post("/v1/chat/completions", "{nope"), 400, "invalid_json")
    expectOpenAiError(await client().get("/v1/nothing-here"), 404, "not_found")
    // Outside /v1 the shape stays DAC's.
    const dac = await client().get("/api/nothing-here")
    expect(dac.status).toBe(404)
    expect(Object.keys(dac.json.error).sort()).toEqual(["code", "message"])
  })
})

describe("headers", () => {
  it("headers over MAX_HEADER_BYTES get a 431 with a JSON body", async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(gateway.baseUrl)
      const req = httpRequest(
        { host: url.hostname, port: url.port, path: "/health", headers: { "x-big": "x".repeat(10_000) } },
        (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (chunk) => {
            body += chunk
          })
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
        },
      )
      req.on("error", reject)
      req.end()
    })
    expect(answer.status).toBe(431)
    expect(JSON.parse(answer.body).error).toMatchObject({ code: "headers_too_large" })
    expect(JSON.parse(answer.body).error.message).toContain("MAX_HEADER_BYTES")
  })

  it("a header Node cannot parse (a NUL byte) gets a 400 with a JSON body", async () => {
    const answer = await rawRequest(`GET /health HTTP/1.1\r\nHost: x\r\nx-org-id: a\u0000b\r\n\r\n`)
    expect(answer.status).toBe(400)
    expect(JSON.parse(answer.body).error).toMatchObject({ code: "bad_request" })
  })
})

describe("no internals leak", () => {
  it("an unreachable provider is named, its address is not", async () => {
    const response = await client().post("/v1/chat/completions", {
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    })
    expectOpenAiError(response, 502, "upstream_unreachable")
    expect(response.json.error.message).toBe("could not reach openai")
    expect(response.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|detail/)

    const thread = (await client().post("/api/threads")).json.thread_id as string
    const sent = await client().post(
      `/api/threads/${thread}/messages`,
      turn({ provider: "openai", model: "gpt-4o-mini" }),
    )
    expect(sent.status).toBe(502)
    expect(sent.json.error).toMatchObject({ code: "upstream_unreachable", message: "could not reach openai" })
    expect(sent.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|detail/)
  })

  it("/ready says store ok, without host, port or driver", async () => {
    const ready = await client().get("/ready")
    expect(ready.status).toBe(200)
    expect(ready.json).toMatchObject({ status: "ready", store: "ok" })
    expect(ready.json.providers).toContainEqual({ name: "mock", configured: true })
    expect(Array.isArray(ready.json.pacer)).toBe(true)
    expect(ready.text).not.toMatch(/postgres|embedded|127\.0\.0\.1|5432/)
  })
})

describe("/ready when the store is gone", () => {
  it("answers 503 store unavailable at once, naming no host, port or driver", async () => {
    const target = new URL(inject("databaseUrl"))
    // The gateway reaches the suite's database through this proxy; closing it takes the store away.
    const sockets = new Set<Socket>()
    const proxy = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on("error", () => {})
        s.on("close", () => sockets.delete(s))
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
    const proxyPort = (proxy.address() as { port: number }).port
    const proxied = new URL(target)
    proxied.host = `127.0.0.1:${proxyPort}`
    const own = await startGateway({ DATABASE_URL: proxied.toString() })
    try {
      expect((await api(own.baseUrl, org).get("/ready")).json.store).toBe("ok")
      await new Promise<void>((resolve) => {
        proxy.close(() => resolve())
        for (const s of sockets) s.destroy()
      })
      const started = performance.now()
      const ready = await api(own.baseUrl, org).get("/ready")
      expect(performance.now() - started).toBeLessThan(5_000)
      expect(ready.status).toBe(503)
      expect(ready.json).toMatchObject({
        status: "unavailable",
        store: "unavailable",
        error: { code: "store_unavailable" },
      })
      expect(ready.json.providers).toContainEqual({ name: "mock", configured: true })
      expect(Array.isArray(ready.json.pacer)).toBe(true)
      expect(ready.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|postgres|pglite|connect/i)
      expect(ready.text).not.toContain(String(proxyPort))
    } finally {
      await own.close()
    }
  })
})
