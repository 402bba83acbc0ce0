import { Context, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { KeyId } from "../../src/domain/keys.ts"
import { KeysRepo } from "../../src/store/keys-repo.ts"
import { type RunningGateway, startGateway } from "../support/gateway.ts"

const adminKey = `admin-${crypto.randomUUID()}`
let gateway: RunningGateway

/** A request with exactly these headers (no org header unless a test adds one). */
const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
  const response = await fetch(`${gateway.baseUrl}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  // biome-ignore lint/suspicious/noExplicitAny: each test asserts the shape it reads
  return { status: response.status, text, json: json as any }
}
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
const admin = bearer(adminKey)

const issue = async (org: string, name = "test") => {
  const created = await call("POST", "/admin/keys", admin, { org_id: org, name })
  expect(created.status).toBe(201)
  return created.json as { key_id: string; key: string; org_id: string }
}

const orgA = `org-a-${crypto.randomUUID()}`
const orgB = `org-b-${crypto.randomUUID()}`
let keyA: { key_id: string; key: string }
let keyB: { key_id: string; key: string }
let revoked: { key_id: string; key: string }
let threadId: string
let requestId: string

const turn = { role: "user", content: "hello", provider: "mock", model: "faststream-ttft" }
const completion = { model: "mock/faststream-ttft", messages: [{ role: "user", content: "hi" }] }

beforeAll(async () => {
  gateway = await startGateway({
    AUTH_MODE: "keys",
    ADMIN_API_KEY: adminKey,
    MOCK_TOKENS: "4",
    MOCK_TTFT_MS: "2",
    MOCK_TOKEN_INTERVAL_MS: "1",
  })
  keyA = await issue(orgA)
  keyB = await issue(orgB)
  revoked = await issue(orgA, "revoked")
  expect((await call("DELETE", `/admin/keys/${revoked.key_id}`, admin)).status).toBe(200)
  const thread = await call("POST", "/api/threads", bearer(keyA.key), { title: "t" })
  threadId = thread.json.thread_id
  const sent = await call("POST", `/api/threads/${threadId}/messages`, bearer(keyA.key), turn)
  expect(sent.status).toBe(200)
  requestId = sent.json.request_id
})
afterAll(() => gateway?.close())

type Who = "none" | "unknown" | "other org" | "revoked" | "right" | "admin"
const headersOf = (who: Who): Record<string, string> => {
  switch (who) {
    case "none":
      return {}
    case "unknown":
      return bearer(`dac_${"x".repeat(43)}`)
    case "other org":
      return bearer(keyB.key)
    case "revoked":
      return bearer(revoked.key)
    case "right":
      return bearer(keyA.key)
    case "admin":
      return admin
  }
}

interface Route {
  readonly name: string
  readonly method: string
  readonly path: () => string
  readonly body?: unknown
  /** With the right key; and with another org's key (404 where the object is the org's). */
  readonly right: number
  readonly other: number
}

const routes: ReadonlyArray<Route> = [
  { name: "create thread", method: "POST", path: () => "/api/threads", body: {}, right: 201, other: 201 },
  { name: "list threads", method: "GET", path: () => "/api/threads", right: 200, other: 200 },
  { name: "get thread", method: "GET", path: () => `/api/threads/${threadId}`, right: 200, other: 404 },
  {
    name: "send message",
    method: "POST",
    path: () => `/api/threads/${threadId}/messages`,
    body: turn,
    right: 200,
    other: 404,
  },
  {
    name: "stream message",
    method: "POST",
    path: () => `/api/threads/${threadId}/messages/stream`,
    body: turn,
    right: 200,
    other: 404,
  },
  {
    name: "re-attach",
    method: "GET",
    path: () => `/api/threads/${threadId}/stream/${requestId}`,
    right: 200,
    other: 404,
  },
  { name: "cancel", method: "POST", path: () => `/api/threads/cancel/${requestId}`, right: 200, other: 404 },
  { name: "performance", method: "GET", path: () => "/api/metrics/performance", right: 200, other: 200 },
  {
    name: "completions",
    method: "POST",
    path: () => "/v1/chat/completions",
    body: completion,
    right: 200,
    other: 200,
  },
]

const whos: ReadonlyArray<Who> = ["none", "unknown", "other org", "revoked", "right", "admin"]

describe("AUTH_MODE=keys: every route × every caller", () => {
  it("answers each with the expected status, 401 invalid_api_key in the route's shape", async () => {
    const rows: Array<string> = []
    for (const route of routes) {
      for (const who of whos) {
        const expected = who === "right" ? route.right : who === "other org" ? route.other : 401
        const answer = await call(route.method, route.path(), headersOf(who), route.body)
        rows.push(`${route.name} × ${who}: ${answer.status}`)
        expect(answer.status, `${route.name} × ${who}: ${answer.text.slice(0, 200)}`).toBe(expected)
        if (expected === 401) {
          expect(answer.json.error.code).toBe("invalid_api_key")
          // OpenAI's shape under /v1 (its SDKs raise AuthenticationError on it).
          if (route.path().startsWith("/v1")) expect(answer.json.error.type).toBe("authentication_error")
        }
      }
    }
    console.log(`keys matrix: ${rows.length} cases`)
  })

  it("takes the key from x-api-key too, and ignores an x-org-id sent with a key", async () => {
    const viaHeader = await call("GET", `/api/threads/${threadId}`, { "x-api-key": keyA.key })
    expect(viaHeader.status).toBe(200)
    const spoofed = await call("GET", `/api/threads/${threadId}`, { ...bearer(keyB.key), "x-org-id": orgA })
    expect(spoofed.status).toBe(404)
    const ownWithOther = await call("GET", `/api/threads/${threadId}`, {
      ...bearer(keyA.key),
      "x-org-id": orgB,
    })
    expect(ownWithOther.status).toBe(200)
    const headerOnly = await call("GET", "/api/threads", { "x-org-id": orgA })
    expect(headerOnly.status).toBe(401)
  })

  it("admin routes: only the admin key", async () => {
    const target = await issue(orgB, "target")
    const adminRoutes = [
      { method: "POST", path: "/admin/keys", body: { org_id: orgB }, ok: 201 },
      { method: "GET", path: `/admin/keys?org_id=${orgB}`, ok: 200 },
      { method: "PATCH", path: `/admin/keys/${target.key_id}`, body: { name: "renamed" }, ok: 200 },
      { method: "DELETE", path: `/admin/keys/${target.key_id}`, ok: 200 },
    ]
    for (const route of adminRoutes) {
      for (const who of whos) {
        const answer = await call(route.method, route.path, headersOf(who), route.body)
        const expected = who === "admin" ? route.ok : 401
        expect(answer.status, `${route.method} ${route.path} × ${who}`).toBe(expected)
      }
    }
  })
})

describe("the admin API", () => {
  it("issues, lists, changes and revokes keys; the secret is shown once", async () => {
    const org = `org-admin-${crypto.randomUUID()}`
    const created = await call("POST", "/admin/keys", admin, {
      org_id: org,
      name: "ci",
      limits: { requests_per_minute: 10 },
    })
    expect(created.status).toBe(201)
    expect(created.json).toMatchObject({ org_id: org, name: "ci", limits: { requests_per_minute: 10 } })
    expect(created.json.key).toMatch(/^dac_[A-Za-z0-9_-]{43}$/)
    const listed = await call("GET", `/admin/keys?org_id=${org}`, admin)
    expect(listed.status).toBe(200)
    expect(listed.json.keys).toHaveLength(1)
    const [entry] = listed.json.keys
    expect(entry).toMatchObject({ key_id: created.json.key_id, prefix: created.json.key.slice(0, 12) })
    expect(listed.text).not.toContain(created.json.key)
    expect(Object.keys(entry).sort()).toEqual(
      ["created_at", "key_id", "last_used_at", "limits", "name", "org_id", "prefix", "revoked_at"].sort(),
    )
    const changed = await call("PATCH", `/admin/keys/${created.json.key_id}`, admin, {
      limits: { concurrent_requests: 2 },
    })
    expect(changed.status).toBe(200)
    expect(changed.json).toMatchObject({ name: "ci", limits: { concurrent_requests: 2 } })
    expect((await call("GET", "/api/threads", bearer(created.json.key))).status).toBe(200)
    const gone = await call("DELETE", `/admin/keys/${created.json.key_id}`, admin)
    expect(gone.status).toBe(200)
    expect(gone.json.revoked_at).not.toBeNull()
    // Revoked through this gateway: refused at once, not after the cache's second.
    expect((await call("GET", "/api/threads", bearer(created.json.key))).status).toBe(401)
    const unknown = await call("DELETE", `/admin/keys/${crypto.randomUUID()}`, admin)
    expect(unknown.status).toBe(404)
    expect(unknown.json.error.code).toBe("key_not_found")
    const bad = await call("POST", "/admin/keys", admin, { org_id: "no spaces allowed" })
    expect(bad.status).toBe(400)
  })

  it("a burst with a key not cached yet is answered (one store lookup serves them all)", async () => {
    const key = await issue(orgA, "burst")
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => call("GET", "/api/threads?limit=1", bearer(key.key))),
    )
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200))
  })

  it("is listed in /openapi.json", async () => {
    const doc = await call("GET", "/openapi.json", {})
    expect(Object.keys(doc.json.paths)).toEqual(
      expect.arrayContaining(["/admin/keys", "/admin/keys/{key_id}"]),
    )
  })

  it("a key revoked elsewhere (the CLI, another replica) stops working within 1 s", async () => {
    const repo = Context.get(gateway.context as Context.Context<KeysRepo>, KeysRepo)
    const delays: Array<number> = []
    // Several trials: the delay depends on where in the refresher's period the revoke falls.
    for (let trial = 0; trial < 5; trial++) {
      const key = await issue(orgA, "elsewhere")
      expect((await call("GET", "/api/threads", bearer(key.key))).status).toBe(200)
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 500))
      await Effect.runPromise(repo.revoke(key.key_id as KeyId))
      const revokedAt = performance.now()
      let delay = Number.NaN
      while (performance.now() - revokedAt < 3_000) {
        if ((await call("GET", "/api/threads", bearer(key.key))).status === 401) {
          delay = performance.now() - revokedAt
          break
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      delays.push(delay)
    }
    console.log(
      `revocation delay (revoked in the store, not through this gateway): ${delays.map((d) => d.toFixed(0)).join(", ")} ms; max ${Math.max(...delays).toFixed(0)} ms`,
    )
    for (const delay of delays) expect(delay).toBeLessThan(1_000)
  })
})

describe("last_used_at", () => {
  it("is written off the request path, at most once a minute per key", async () => {
    const key = await issue(orgA, "used")
    const lastUsed = async () => {
      const listed = await call("GET", `/admin/keys?org_id=${orgA}`, admin)
      return listed.json.keys.find((k: { key_id: string }) => k.key_id === key.key_id).last_used_at
    }
    expect(await lastUsed()).toBeNull()
    expect((await call("GET", "/api/threads", bearer(key.key))).status).toBe(200)
    // The refresher writes it within its period (0.5 s).
    let first: string | null = null
    for (let i = 0; i < 40 && first === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      first = await lastUsed()
    }
    expect(first).not.toBeNull()
    for (let i = 0; i < 20; i++) await call("GET", "/api/threads", bearer(key.key))
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    expect(await lastUsed()).toBe(first)
  })
})

describe("without ADMIN_API_KEY", () => {
  it("every /admin route answers 404", async () => {
    const bare = await startGateway({ AUTH_MODE: "keys" })
    try {
      for (const [method, path] of [
        ["POST", "/admin/keys"],
        ["GET", "/admin/keys"],
        ["PATCH", `/admin/keys/${crypto.randomUUID()}`],
        ["DELETE", `/admin/keys/${crypto.randomUUID()}`],
      ] as const) {
        const response = await fetch(`${bare.baseUrl}${path}`, {
          method,
          headers: { authorization: "Bearer anything", "content-type": "application/json" },
          body: method === "POST" || method === "PATCH" ? "{}" : undefined,
        })
        expect(response.status, `${method} ${path}`).toBe(404)
      }
    } finally {
      await bare.close()
    }
  })
})
