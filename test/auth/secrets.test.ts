import { Context, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RunningGateway, startGateway } from "../support/gateway.ts"

const adminKey = `admin-${crypto.randomUUID()}`
const opsToken = `ops-${crypto.randomUUID()}`
let gateway: RunningGateway
let captured = ""
const methods = ["log", "info", "warn", "error", "debug", "trace"] as const
const originals = methods.map((name) => console[name])

/** Everything the gateway logs (every level goes through the console) and writes, from here on. */
const capture = () => {
  for (const name of methods) {
    console[name] = (...args: Array<unknown>) => {
      captured += `${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")}\n`
    }
  }
}

beforeAll(async () => {
  capture()
  gateway = await startGateway({
    AUTH_MODE: "keys",
    ADMIN_API_KEY: adminKey,
    OPS_TOKEN: opsToken,
    LOG_LEVEL: "All",
    MOCK_TOKENS: "4",
    MOCK_TTFT_MS: "2",
    MOCK_TOKEN_INTERVAL_MS: "1",
  })
})
afterAll(async () => {
  await gateway?.close()
  methods.forEach((name, i) => {
    console[name] = originals[i]!
  })
})

const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
  const response = await fetch(`${gateway.baseUrl}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, text: await response.text() }
}

describe("no secret anywhere", () => {
  it("keys, the admin key and the ops token appear in no log (LOG_LEVEL=All), /metrics, /ready or table", async () => {
    const admin = { authorization: `Bearer ${adminKey}` }
    const secrets: Array<string> = [adminKey, opsToken]
    const keyIds: Array<string> = []
    for (const org of ["s1", "s2"]) {
      const created = await call("POST", "/admin/keys", admin, { org_id: `secrets-${org}`, name: org })
      expect(created.status).toBe(201)
      const { key, key_id } = JSON.parse(created.text)
      secrets.push(key)
      keyIds.push(key_id)
    }
    const [key1, key2] = secrets.slice(2) as [string, string]
    const turn = { role: "user", content: "hello", provider: "mock", model: "faststream-ttft" }
    for (const key of [key1, key2]) {
      const auth = { authorization: `Bearer ${key}` }
      const thread = JSON.parse((await call("POST", "/api/threads", auth, { title: "t" })).text)
      const sent = await call("POST", `/api/threads/${thread.thread_id}/messages`, { "x-api-key": key }, turn)
      expect(sent.status).toBe(200)
      const requestId = JSON.parse(sent.text).request_id
      await call("POST", `/api/threads/${thread.thread_id}/messages/stream`, auth, turn)
      await call("GET", `/api/threads/${thread.thread_id}`, auth)
      await call("GET", `/api/threads/${thread.thread_id}/stream/${requestId}`, auth)
      await call("POST", `/api/threads/cancel/${requestId}`, auth)
      await call("GET", "/api/metrics/performance", auth)
      await call("POST", "/v1/chat/completions", auth, {
        model: "mock/faststream-ttft",
        messages: [{ role: "user", content: "hi" }],
      })
      await call("POST", "/v1/chat/completions", auth, {
        model: "mock/faststream-ttft",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      })
      // Refused attempts too: a wrong key must not be echoed either.
      await call("GET", "/api/threads", { authorization: `Bearer ${key}x` })
    }
    await call("PATCH", `/admin/keys/${keyIds[0]}`, admin, { name: "renamed" })
    await call("GET", "/admin/keys", admin)
    await call("DELETE", `/admin/keys/${keyIds[1]}`, admin)
    await call("GET", "/api/threads", { authorization: `Bearer ${key2}` })
    // The ops token opens /metrics, /ready's details and /docs; without it they say nothing.
    const ops = { authorization: `Bearer ${opsToken}` }
    expect((await call("GET", "/metrics", {})).status).toBe(401)
    expect((await call("GET", "/docs", {})).status).toBe(401)
    expect(JSON.parse((await call("GET", "/ready", {})).text)).toEqual({ status: "ready" })
    expect((await call("GET", "/health", {})).status).toBe(200)
    const metrics = await call("GET", "/metrics", ops)
    expect(metrics.status).toBe(200)
    const ready = await call("GET", "/ready", ops)
    expect(JSON.parse(ready.text)).toMatchObject({ status: "ready", store: "ok" })
    expect((await call("GET", "/docs", ops)).status).toBe(200)
    // A second of refresher work (last_used_at, re-validation) is logged too.
    await new Promise((resolve) => setTimeout(resolve, 1_200))

    const sql = Context.get(gateway.context as Context.Context<SqlClient.SqlClient>, SqlClient.SqlClient)
    const tables = await Effect.runPromise(
      sql<{ table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
    )
    let dump = ""
    for (const { table_name } of tables) {
      const rows = await Effect.runPromise(sql`SELECT * FROM ${sql(table_name)}`)
      dump += JSON.stringify(rows, (_, value) => (typeof value === "bigint" ? String(value) : value))
    }
    expect(tables.map((t) => t.table_name)).toContain("api_keys")
    expect(captured.length).toBeGreaterThan(1_000)
    const places = { logs: captured, metrics: metrics.text, ready: ready.text, database: dump }
    for (const secret of secrets) {
      for (const [place, text] of Object.entries(places)) {
        expect(text.includes(secret), `a secret in ${place}`).toBe(false)
        // Nor its tail (a secret cut by a prefix-stripping formatter).
        expect(text.includes(secret.slice(-24)), `a secret's tail in ${place}`).toBe(false)
      }
    }
    console.log(
      `secrets: ${secrets.length} secrets, ${captured.length} bytes of logs, ${dump.length} bytes of tables: none found`,
    )
  })
})
