import { createServer, type Server } from "node:net"
import { type Context, Effect, Exit, Layer, Option, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { newMessageId, newRequestId, type OrgId } from "../../src/domain/ids.ts"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { embeddedLayer } from "../../src/store/sql.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"
import { canListSockets, listeningSockets } from "../support/listening.ts"

const StoreLive = Layer.mergeAll(ThreadsRepo.layer, MessagesRepo.layer).pipe(
  Layer.provideMerge(embeddedLayer(undefined)),
)

let before: Set<string>
let after: Set<string>
let scope: Scope.Closeable
let context: Context.Context<ThreadsRepo | MessagesRepo | SqlClient.SqlClient>
const run = <A, E>(effect: Effect.Effect<A, E, ThreadsRepo | MessagesRepo | SqlClient.SqlClient>) =>
  Effect.runPromise(Effect.provideContext(effect, context))

beforeAll(async () => {
  before = canListSockets ? listeningSockets() : new Set()
  scope = Effect.runSync(Scope.make())
  context = await Effect.runPromise(Layer.buildWithScope(StoreLive, scope))
  after = canListSockets ? listeningSockets() : new Set()
})
afterAll(() => (scope === undefined ? undefined : Effect.runPromise(Scope.close(scope, Exit.void))))

const listen = (server: Server) =>
  new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))

describe("the embedded store", () => {
  it.skipIf(!canListSockets)("listens on no socket: no other client can connect to it", async () => {
    // The check sees a listener this process opens (so an empty answer below means something)…
    const control = createServer()
    await listen(control)
    const address = control.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    expect([...listeningSockets()]).toContainEqual(expect.stringMatching(new RegExp(`^tcp .*:${port}$`)))
    await new Promise((resolve) => control.close(resolve))
    // …and starting the store (its thread, PGlite, migrations, a pooled connection) opened none: no
    // TCP port, no Unix socket. Another local process has nothing to connect to, so it can neither
    // read a tenant's rows nor take PGlite's one connection from the gateway.
    const opened = [...after].filter((socket) => !before.has(socket))
    expect(opened).toEqual([])
  })

  it("serves the gateway over its channel: turns, a transaction, concurrent queries", async () => {
    const org = `org-${crypto.randomUUID()}` as OrgId
    const thread = await run(Effect.flatMap(ThreadsRepo, (threads) => threads.create(org, "private")))
    const started = await run(
      Effect.flatMap(MessagesRepo, (messages) =>
        messages.insertTurn({
          org,
          threadId: thread.thread_id,
          requestId: newRequestId(),
          userMessageId: newMessageId(),
          assistantMessageId: newMessageId(),
          messages: [{ role: "user", content: "hello" }],
          provider: "mock",
          model: "faststream-ttft",
          owner: "embedded-test",
          leaseMs: 60_000,
        }),
      ),
    )
    expect(started.userMessage.content).toBe("hello")
    const loaded = await run(
      Effect.flatMap(MessagesRepo, (messages) => messages.loadThread(org, thread.thread_id)),
    )
    expect(Option.getOrThrow(loaded).history).toEqual([{ role: "user", content: "hello" }])
    // A transaction keeps its statements together; a failed one leaves nothing behind.
    const inTransaction = await run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const failed = yield* sql`UPDATE threads SET title = 'changed' WHERE id = ${thread.thread_id}`.pipe(
          Effect.andThen(Effect.fail("rolled back")),
          sql.withTransaction,
          Effect.flip,
        )
        const rows = yield* sql<{ title: string }>`SELECT title FROM threads WHERE id = ${thread.thread_id}`
        return { failed, title: rows[0]?.title }
      }),
    )
    expect(inTransaction).toEqual({ failed: "rolled back", title: "private" })
    const counts = await run(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) => sql<{ n: number }>`SELECT ${i}::int AS n`.pipe(Effect.map((rows) => rows[0]!.n)),
          { concurrency: "unbounded" },
        ),
      ),
    )
    expect(counts).toEqual(Array.from({ length: 50 }, (_, i) => i))
    const messages = await run(
      Effect.flatMap(MessagesRepo, (repo) => repo.listByThread(org, thread.thread_id)),
    )
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant"])
  })
})
