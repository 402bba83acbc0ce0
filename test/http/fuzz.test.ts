import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"
import { type RawAnswer, type RawRequest, rawRequest } from "../support/raw-http.ts"

/**
 * Hostile requests against every route of a real gateway (mock provider, loopback only): NUL,
 * lone surrogates, megabyte strings, deep nesting, odd numbers, wrong types, odd content types and
 * header values. Nothing may answer ≥ 500 or go unanswered, every error is JSON in its route's
 * shape, and after each refusal the well-formed twin and the refused request again are answered
 * at once (nothing stays claimed or wedged). `FUZZ_SEED` replays a run.
 */

const seed = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED)
const cases = Number(process.env.FUZZ_CASES ?? 150)
const answerWithinMs = 5_000

let gateway: RunningGateway
let port: number
const org = `fuzz-${crypto.randomUUID()}`
/** Ids that exist: a thread of the org and a finished request in it. */
const known = { threadId: "", requestId: "" }

beforeAll(async () => {
  gateway = await startGateway({ MOCK_TOKENS: "3", MOCK_TTFT_MS: "1", MOCK_TOKEN_INTERVAL_MS: "1" })
  port = Number(new URL(gateway.baseUrl).port)
  const client = api(gateway.baseUrl, org)
  known.threadId = (await client.post("/api/threads", { title: "fuzz" })).json.thread_id
  const sent = await client.post(`/api/threads/${known.threadId}/messages`, {
    role: "user",
    content: "seed",
    provider: "mock",
    model: "faststream-ttft",
  })
  known.requestId = sent.json.request_id
})
afterAll(() => gateway?.close())

// ---------- hostile values ----------

/** A JSON token written as it is (`1e400`, `NaN`), where JSON.stringify could not. */
interface Raw {
  readonly raw: string
}
const raw = (text: string): Raw => ({ raw: text })
const isRaw = (u: unknown): u is Raw => typeof u === "object" && u !== null && "raw" in u

/** Any UTF-16 code unit, NUL and half surrogates included. */
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n))

const hostileString = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom("\u0000", "a\u0000b", "\uD800", "x\uDFFFy", "\uDBFF\uDBFF", "\uDC00\uD800"),
  },
  fc.constantFrom(
    "\u0000",
    "a\u0000b",
    "\uD800",
    "x\uDFFFy",
    "\uDBFF\uDBFF",
    "\uDC00\uD800",
    "",
    " ",
    "\n\r\t",
  ),
  fc.string({ unit: anyUnit, maxLength: 40 }),
  fc.constantFrom(1_000_000, 300_000, 1_100).map((n) => "x".repeat(n)),
  fc.constantFrom("é".repeat(600_000), "😀".repeat(300_000), `${"a".repeat(999_000)}\u0000`),
)

const deep = (depth: number, open: string, close: string) => raw(open.repeat(depth) + close.repeat(depth))

const hostileNumber = fc.oneof(
  fc.constantFrom(1e308, -1e308, -1, 0, -0, 0.5, 1.5, 2 ** 53 + 1, Number.MIN_VALUE, 1_000_001, 3),
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    raw("1e400"),
    raw("-1e400"),
    raw("NaN"),
    raw("Infinity"),
    raw("0x10"),
    raw("01"),
    raw("1."),
  ),
)

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: hostileString },
  { weight: 3, arbitrary: hostileNumber },
  fc.constantFrom(null, true, false, [], {}, [[]], { a: { b: {} } }, ["a", 1, null]),
  fc.constantFrom(1_000, 10_000, 100_000).map((n) => deep(n, "[", "]")),
  fc.constantFrom(1_000, 50_000).map((n) => raw(`${'{"a":'.repeat(n)}1${"}".repeat(n)}`)),
  fc.jsonValue({ maxDepth: 3 }),
)

/** JSON text with the raw tokens put in place. */
const serialize = (value: unknown): string => {
  const raws: Array<string> = []
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (isRaw(v)) {
      raws.push(v.raw)
      return `__raw_${raws.length - 1}__`
    }
    return v
  })
  return (text ?? "null").replace(/"__raw_(\d+)__"/g, (_m, i: string) => raws[Number(i)]!)
}

const hostileBodyText = fc.oneof(
  fc.constantFrom(
    "",
    "{",
    "nope",
    "{'a':1}",
    '{"a":1,}',
    "[1,2",
    "\u0000",
    '{"a":"\\ud800"}',
    "null",
    "[]",
    '"s"',
    "1",
  ),
  fc.constantFrom(200_000, 1_000_000).map((n) => "[".repeat(n) + "]".repeat(n)),
  fc.constantFrom(1_100_000).map((n) => `{"pad":"${"x".repeat(n)}"}`),
  hostileValue.map(serialize),
)

const hostileContentType = fc.constantFrom(
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/jsonx",
  "application/json; charset=utf-16",
  "application/vnd.api+json",
  "APPLICATION/JSON",
  "",
  "json",
  `application/json; ${"x".repeat(4_000)}`,
)

const hostileHeaderValue = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "a\u0000b",
    "\uD800",
    "é",
    "😀",
    "-1",
    "1e309",
    "NaN",
    "9".repeat(400),
    "off",
    "OFF",
  ),
  fc.constantFrom(300, 8_000, 20_000).map((n) => "k".repeat(n)),
  fc.string({ unit: anyUnit, maxLength: 20 }).filter((s) => !/[\r\n]/.test(s)),
)

const hostileSegment = fc.constantFrom(
  "not-a-uuid",
  "%00",
  "%ED%A0%80",
  "%",
  "%zz",
  "..",
  "00000000-0000-0000-0000-000000000000",
  "x".repeat(5_000),
  "%F0%9F%98%80",
  "a%2Fb",
)

const hostileQueryValue = fc.constantFrom(
  "-1",
  "0",
  "0.5",
  "1e309",
  "NaN",
  "abc",
  "",
  "%00",
  "%ED%A0%80",
  "99999999",
)

// ---------- routes ----------

type Headers = ReadonlyArray<readonly [string, string]>
interface Route {
  readonly name: string
  readonly method: string
  /** Path segments that are ids: fuzzed separately. */
  readonly path: (ids: { thread: string; request: string }) => string
  readonly query?: Record<string, string>
  /** The well-formed body, when the route takes one. */
  readonly body?: () => Record<string, unknown>
  readonly headers?: Headers
  /** Whether the well-formed twin is expected to succeed (< 400). */
  readonly twinSucceeds: boolean
}

const contents = ["hello", "hi there", "tell me a joke"]
const pick = (n: number) => contents[n % contents.length]!
let counter = 0

const turnBody = () => ({
  role: "user",
  content: pick(counter++),
  provider: "mock",
  model: "faststream-ttft",
})

const routes: ReadonlyArray<Route> = [
  {
    name: "create thread",
    method: "POST",
    path: () => "/api/threads",
    body: () => ({ title: "t" }),
    twinSucceeds: true,
  },
  {
    name: "list threads",
    method: "GET",
    path: () => "/api/threads",
    query: { limit: "10" },
    twinSucceeds: true,
  },
  { name: "get thread", method: "GET", path: (i) => `/api/threads/${i.thread}`, twinSucceeds: true },
  {
    name: "send message",
    method: "POST",
    path: (i) => `/api/threads/${i.thread}/messages`,
    body: turnBody,
    twinSucceeds: true,
  },
  {
    name: "send message (accept event-stream)",
    method: "POST",
    path: (i) => `/api/threads/${i.thread}/messages`,
    body: turnBody,
    headers: [["accept", "text/event-stream"]],
    twinSucceeds: true,
  },
  {
    name: "stream message",
    method: "POST",
    path: (i) => `/api/threads/${i.thread}/messages/stream`,
    body: turnBody,
    twinSucceeds: true,
  },
  {
    name: "reattach",
    method: "GET",
    path: (i) => `/api/threads/${i.thread}/stream/${i.request}`,
    headers: [["last-event-id", "1"]],
    twinSucceeds: true,
  },
  {
    name: "cancel",
    method: "POST",
    path: (i) => `/api/threads/cancel/${i.request}`,
    query: { scope: "request" },
    twinSucceeds: true,
  },
  {
    name: "performance",
    method: "GET",
    path: () => "/api/metrics/performance",
    query: { last_n: "10", provider: "mock" },
    twinSucceeds: true,
  },
  {
    name: "chat completions",
    method: "POST",
    path: () => "/v1/chat/completions",
    body: () => ({ model: "mock/faststream-ttft", messages: [{ role: "user", content: pick(counter++) }] }),
    twinSucceeds: true,
  },
  {
    name: "chat completions (stream)",
    method: "POST",
    path: () => "/v1/chat/completions",
    body: () => ({
      model: "mock/faststream-ttft",
      messages: [{ role: "user", content: pick(counter++) }],
      stream: true,
      stream_options: { include_usage: true },
    }),
    twinSucceeds: true,
  },
  { name: "ready", method: "GET", path: () => "/ready", twinSucceeds: true },
  { name: "health", method: "GET", path: () => "/health", twinSucceeds: true },
  { name: "unknown route", method: "GET", path: () => "/nothing/here", twinSucceeds: false },
  {
    name: "unknown /v1 route",
    method: "POST",
    path: () => "/v1/nothing",
    body: () => ({}),
    twinSucceeds: false,
  },
  { name: "unknown method", method: "DELETE", path: () => "/api/threads", twinSucceeds: false },
]

/** Routes that take a body have the most to get wrong: they come up more often. */
const route = fc.oneof(
  ...routes.map((r) => ({ weight: r.body === undefined ? 1 : 3, arbitrary: fc.constant(r) })),
)

/** What is made hostile in one request. */
type Mutation =
  /** A field of the route's own body (`own`), or any of `fieldNames`, set to a hostile value. */
  | {
      readonly kind: "field"
      readonly own: boolean
      readonly index: number
      readonly field: string
      readonly value: unknown
    }
  | { readonly kind: "nested"; readonly value: unknown }
  | { readonly kind: "drop"; readonly index: number }
  | { readonly kind: "body"; readonly text: string }
  | { readonly kind: "contentType"; readonly value: string }
  | { readonly kind: "header"; readonly name: string; readonly value: string }
  | { readonly kind: "segment"; readonly which: "thread" | "request"; readonly value: string }
  | { readonly kind: "query"; readonly name: string; readonly value: string }
  | { readonly kind: "chunked"; readonly text: string }

const fieldNames = [
  "title",
  "role",
  "content",
  "provider",
  "model",
  "temperature",
  "max_tokens",
  "top_p",
  "stop",
  "messages",
  "stream",
  "stream_options",
  "n",
  "max_completion_tokens",
  "tools",
  "response_format",
  "extra",
]

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("field" as const),
      own: fc.nat(3).map((n) => n > 0),
      index: fc.nat(10),
      field: fc.constantFrom(...fieldNames),
      value: hostileValue,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("nested" as const), value: hostileValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("drop" as const), index: fc.nat(5) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("body" as const), text: hostileBodyText }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("contentType" as const), value: hostileContentType }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("header" as const),
      name: fc.constantFrom(
        "idempotency-key",
        "x-org-id",
        "accept",
        "last-event-id",
        "x-dac-coalesce",
        "authorization",
        "x-odd",
      ),
      value: hostileHeaderValue,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("segment" as const),
      which: fc.constantFrom("thread" as const, "request" as const),
      value: hostileSegment,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("query" as const),
      name: fc.constantFrom("limit", "last_n", "scope", "provider"),
      value: hostileQueryValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("chunked" as const), text: hostileBodyText }) },
)

const queryString = (query: Record<string, string> | undefined) => {
  const entries = Object.entries(query ?? {})
  // Values are written as given: a hostile one (`%ED%A0%80`) must reach the server undecoded.
  return entries.length === 0 ? "" : `?${entries.map(([k, v]) => `${k}=${v}`).join("&")}`
}

/** The well-formed request, and the same one with the mutation applied. */
const build = (route: Route, m: Mutation): { twin: RawRequest; hostile: RawRequest } => {
  const body = route.body?.()
  const baseHeaders: Array<readonly [string, string]> = [["x-org-id", org], ...(route.headers ?? [])]
  if (body !== undefined) baseHeaders.push(["content-type", "application/json"])
  const ids = { thread: known.threadId, request: known.requestId }
  const twin: RawRequest = {
    method: route.method,
    path: route.path(ids) + queryString(route.query),
    headers: baseHeaders,
    body: body === undefined ? undefined : JSON.stringify(body),
  }
  let headers = [...baseHeaders]
  let bodyText = twin.body
  let path = twin.path
  switch (m.kind) {
    case "field": {
      const keys = Object.keys(body ?? {})
      const field = m.own && keys.length > 0 ? keys[m.index % keys.length]! : m.field
      bodyText = serialize({ ...(body ?? {}), [field]: m.value })
      break
    }
    case "nested":
      bodyText = serialize({
        ...(body ?? {}),
        messages: [{ role: "user", content: m.value }],
        stop: [m.value],
      })
      break
    case "drop": {
      const keys = Object.keys(body ?? {})
      const { [keys[m.index % Math.max(1, keys.length)] ?? "none"]: _dropped, ...rest } = body ?? {}
      bodyText = JSON.stringify(rest)
      break
    }
    case "body":
      bodyText = m.text
      break
    case "contentType":
      headers = headers.filter(([n]) => n !== "content-type")
      if (m.value !== "") headers.push(["content-type", m.value])
      bodyText = bodyText ?? "{}"
      break
    case "header":
      headers = headers.filter(([n]) => n !== m.name)
      headers.push([m.name, m.value])
      break
    case "segment":
      path = route.path({ ...ids, [m.which]: m.value }) + queryString(route.query)
      break
    case "query":
      path = route.path(ids) + queryString({ ...(route.query ?? {}), [m.name]: m.value })
      break
    case "chunked": {
      const bytes = Buffer.from(m.text, "utf8")
      headers.push(["transfer-encoding", "chunked"])
      if (!headers.some(([n]) => n === "content-type")) headers.push(["content-type", "application/json"])
      // An empty text is the last chunk alone: another after it would be a second, pipelined request.
      bodyText = bytes.length === 0 ? "0\r\n\r\n" : `${bytes.length.toString(16)}\r\n${m.text}\r\n0\r\n\r\n`
      break
    }
  }
  return { twin, hostile: { method: route.method, path, headers, body: bodyText } }
}

// ---------- checks ----------

/** Every error answer is JSON in the route's shape: OpenAI's under /v1, DAC's elsewhere. */
const shapeProblem = (request: RawRequest, answer: RawAnswer): string | undefined => {
  if (answer.status < 400) return undefined
  if (!answer.headers["content-type"]?.includes("application/json")) {
    return `error ${answer.status} is not JSON (content-type ${answer.headers["content-type"]})`
  }
  let json: { error?: Record<string, unknown> }
  try {
    json = JSON.parse(answer.body)
  } catch {
    return `error ${answer.status} body does not parse: ${answer.body.slice(0, 200)}`
  }
  const error = json.error
  if (typeof error !== "object" || error === null) return `error ${answer.status} has no error object`
  if (typeof error.code !== "string" || typeof error.message !== "string") {
    return `error ${answer.status} lacks code/message: ${answer.body.slice(0, 200)}`
  }
  if (request.path.startsWith("/v1") && (typeof error.type !== "string" || !("param" in error))) {
    return `error ${answer.status} on /v1 is not in OpenAI's shape: ${answer.body.slice(0, 200)}`
  }
  return undefined
}

const describe_ = (request: RawRequest) => {
  const body =
    request.body === undefined
      ? ""
      : ` body ${JSON.stringify(request.body.slice(0, 120))}…(${request.body.length})`
  const headers = request.headers.map(([n, v]) => `${n}=${JSON.stringify(v.slice(0, 60))}`).join(" ")
  return `${request.method} ${request.path.slice(0, 120)} [${headers}]${body}`
}

describe("fuzz: hostile requests on every route", () => {
  it("never answers ≥ 500, always answers, answers errors in the route's shape, and never wedges", async () => {
    const plan = fc.sample(fc.tuple(route, mutation), { numRuns: cases, seed })
    const problems: Array<string> = []
    let requests = 0
    let fiveHundreds = 0
    let unanswered = 0
    const statuses = new Map<number, number>()
    const send = async (request: RawRequest, what: string) => {
      requests++
      const answer = await rawRequest(port, request, answerWithinMs)
      if (answer === undefined) {
        unanswered++
        problems.push(`${what}: unanswered within ${answerWithinMs} ms: ${describe_(request)}`)
        return undefined
      }
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      if (answer.status >= 500 || !(answer.status >= 100)) {
        fiveHundreds++
        problems.push(`${what}: ${answer.status} ${answer.body.slice(0, 300)}: ${describe_(request)}`)
      }
      const shape = shapeProblem(request, answer)
      if (shape !== undefined) problems.push(`${what}: ${shape}: ${describe_(request)}`)
      return answer
    }
    for (const [route, m] of plan) {
      const { twin, hostile } = build(route, m)
      const first = await send(hostile, `${route.name} / ${m.kind}`)
      if (first === undefined || first.status < 400) continue
      // Refused: the well-formed twin, then the refused one again, are answered at once.
      const again = await send(twin, `${route.name} twin after ${m.kind}`)
      if (again !== undefined && route.twinSucceeds && again.status >= 400) {
        problems.push(`${route.name} twin after ${m.kind}: ${again.status} ${again.body.slice(0, 200)}`)
      }
      const repeat = await send(hostile, `${route.name} / ${m.kind} again`)
      if (repeat !== undefined && repeat.status !== first.status) {
        problems.push(`${route.name} / ${m.kind} again: ${repeat.status}, first ${first.status}`)
      }
    }
    console.log(
      `fuzz: ${requests} requests, seed ${seed}, ${fiveHundreds} ≥ 500, ${unanswered} unanswered, ${problems.length} problems`,
    )
    const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`)
    console.log(`fuzz: statuses ${byStatus.join(" ")}`)
    expect(problems).toEqual([])
  }, 120_000)
})
