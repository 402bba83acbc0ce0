import { type Context, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RequestLog } from "../../src/telemetry/request-log.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

let gateway: RunningGateway
beforeAll(async () => {
  gateway = await startGateway({ MOCK_TTFT_MS: "0", MOCK_TOKENS: "3", MOCK_TOKEN_INTERVAL_MS: "0" })
})
afterAll(() => gateway?.close())

const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | RequestLog>) =>
  Effect.runPromise(
    Effect.provideContext(effect, gateway.context as Context.Context<SqlClient.SqlClient | RequestLog>),
  )

const flush = () => run(Effect.flatMap(RequestLog, (log) => log.flush))

/** A request-log row written `daysAgo` UTC days back (noon), as the batch writer would have. */
const pastRow = (org: string, daysAgo: number, status = "ok") =>
  run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => {
      const at = new Date(
        Date.UTC(
          new Date().getUTCFullYear(),
          new Date().getUTCMonth(),
          new Date().getUTCDate() - daysAgo,
          12,
        ),
      )
      return sql`
        INSERT INTO request_log (request_id, org_id, provider, model, coalesce, status, input_tokens, output_tokens, created_at)
        VALUES (${crypto.randomUUID()}, ${org}, 'mock', 'faststream-ttft', 'leader', ${status}, 10, 20, ${at.toISOString()})`
    }),
  )

const utcDay = (daysAgo: number) => {
  const now = new Date()
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - daysAgo))
    .toISOString()
    .slice(0, 10)
}

const turn = (content: string) => ({ role: "user", content, provider: "mock", model: "faststream-ttft" })

describe("GET /api/usage", () => {
  it("an org's requests and tokens per UTC day, provider and model; never another org's", async () => {
    const orgA = `org-${crypto.randomUUID()}`
    const orgB = `org-${crypto.randomUUID()}`
    const a = api(gateway.baseUrl, orgA)
    const b = api(gateway.baseUrl, orgB)
    const threadA = (await a.post("/api/threads", {})).json.thread_id
    const threadB = (await b.post("/api/threads", {})).json.thread_id
    const replies = [
      await a.post(`/api/threads/${threadA}/messages`, turn("one")),
      await a.post(`/api/threads/${threadA}/messages`, turn("two")),
    ]
    await b.post(`/api/threads/${threadB}/messages`, turn("b's"))
    await flush()
    await pastRow(orgA, 3)
    await pastRow(orgA, 3, "rejected")
    await pastRow(orgA, 10)

    const week = await a.get("/api/usage?days=7")
    expect(week.status).toBe(200)
    expect(week.json.org_id).toBe(orgA)
    expect(week.json.days).toBe(7)
    const sum = (key: "input_tokens" | "output_tokens") =>
      replies.reduce((n, r) => n + r.json.assistant_message.usage[key], 0)
    expect(week.json.usage).toEqual([
      {
        day: utcDay(0),
        provider: "mock",
        model: "faststream-ttft",
        requests: 2,
        input_tokens: sum("input_tokens"),
        output_tokens: sum("output_tokens"),
      },
      // The rejected request of that day is not counted.
      {
        day: utcDay(3),
        provider: "mock",
        model: "faststream-ttft",
        requests: 1,
        input_tokens: 10,
        output_tokens: 20,
      },
    ])
    const longer = await a.get("/api/usage?days=30")
    expect(longer.json.usage.map((u: { day: string }) => u.day)).toEqual([utcDay(0), utcDay(3), utcDay(10)])
    const today = await a.get("/api/usage?days=1")
    expect(today.json.usage.map((u: { day: string }) => u.day)).toEqual([utcDay(0)])

    const other = await b.get("/api/usage")
    expect(other.json.days).toBe(7)
    expect(other.json.usage).toHaveLength(1)
    expect(other.json.usage[0]).toMatchObject({ day: utcDay(0), requests: 1 })
  })

  it("days is 1–90; an org is required", async () => {
    const c = api(gateway.baseUrl, `org-${crypto.randomUUID()}`)
    for (const days of ["0", "91", "1.5", "x"]) {
      const response = await c.get(`/api/usage?days=${days}`)
      expect(response.status).toBe(400)
    }
    expect((await c.get("/api/usage?days=90")).json.usage).toEqual([])
    expect((await api(gateway.baseUrl, undefined).get("/api/usage")).status).toBe(400)
  })
})
