import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import type { StoreUnavailable } from "../domain/errors.ts"
import { newThreadId, type OrgId, type ThreadId } from "../domain/ids.ts"
import type { Thread } from "../domain/thread.ts"
import { type ThreadRow, threadFromRow } from "./rows.ts"
import { orStoreUnavailable } from "./store-errors.ts"

/** Threads, always read and written within one org. */
export class ThreadsRepo extends Context.Service<
  ThreadsRepo,
  {
    readonly create: (org: OrgId, title: string | null) => Effect.Effect<Thread, StoreUnavailable>
    readonly list: (org: OrgId, limit: number) => Effect.Effect<ReadonlyArray<Thread>, StoreUnavailable>
    readonly find: (org: OrgId, id: ThreadId) => Effect.Effect<Option.Option<Thread>, StoreUnavailable>
  }
>()("dac/store/ThreadsRepo") {
  static readonly layer = Layer.effect(
    ThreadsRepo,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      const create = Effect.fn("ThreadsRepo.create")(function* (org: OrgId, title: string | null) {
        const rows = yield* sql<ThreadRow>`
          INSERT INTO threads (id, org_id, title) VALUES (${newThreadId()}, ${org}, ${title})
          RETURNING id, title, created_at`
        return threadFromRow(rows[0]!)
      }, orStoreUnavailable("ThreadsRepo.create"))

      const list = Effect.fn("ThreadsRepo.list")(function* (org: OrgId, limit: number) {
        const rows = yield* sql<ThreadRow>`
          SELECT id, title, created_at FROM threads WHERE org_id = ${org}
          ORDER BY created_at DESC, id DESC LIMIT ${limit}`
        return rows.map(threadFromRow)
      }, orStoreUnavailable("ThreadsRepo.list"))

      const find = Effect.fn("ThreadsRepo.find")(function* (org: OrgId, id: ThreadId) {
        const rows = yield* sql<ThreadRow>`
          SELECT id, title, created_at FROM threads WHERE id = ${id} AND org_id = ${org}`
        return Option.map(Option.fromNullishOr(rows[0]), threadFromRow)
      }, orStoreUnavailable("ThreadsRepo.find"))

      return ThreadsRepo.of({ create, list, find })
    }),
  )
}
