import { Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../config.ts"
import { ThreadNotFound } from "../domain/errors.ts"
import { ThreadWithMessages } from "../domain/thread.ts"
import { Turns } from "../engine/turns.ts"
import { Providers } from "../providers/providers.ts"
import { MessagesRepo } from "../store/messages-repo.ts"
import { describeStore } from "../store/sql.ts"
import { ThreadsRepo } from "../store/threads-repo.ts"
import { Api } from "./api.ts"
import { toApiError, UnavailableError } from "./errors.ts"
import { CurrentOrg } from "./org.ts"

export const ThreadsHandlers = HttpApiBuilder.group(
  Api,
  "threads",
  Effect.fn(function* (handlers) {
    const threads = yield* ThreadsRepo
    const messages = yield* MessagesRepo
    const turns = yield* Turns

    return handlers.handleAll({
      createThread: Effect.fn("http.createThread")(function* ({ payload }) {
        const org = yield* CurrentOrg
        return yield* threads.create(org, payload?.title ?? null)
      }),
      listThreads: Effect.fn("http.listThreads")(function* ({ query }) {
        const org = yield* CurrentOrg
        return { threads: yield* threads.list(org, query.limit ?? 100) }
      }),
      getThread: Effect.fn("http.getThread")(function* ({ params }) {
        const org = yield* CurrentOrg
        const thread = yield* threads.find(org, params.thread_id)
        if (Option.isNone(thread)) {
          return yield* toApiError(new ThreadNotFound({ message: `thread ${params.thread_id} not found` }))
        }
        const list = yield* messages.listByThread(org, params.thread_id)
        return new ThreadWithMessages({ ...thread.value, messages: list }, { disableChecks: true })
      }),
      sendMessage: Effect.fn("http.sendMessage")(function* ({ params, payload }) {
        const org = yield* CurrentOrg
        return yield* turns
          .send({ org, threadId: params.thread_id, body: payload })
          .pipe(Effect.mapError(toApiError))
      }),
    })
  }),
)

export const SystemHandlers = HttpApiBuilder.group(
  Api,
  "system",
  Effect.fn(function* (handlers) {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const providers = yield* Providers
    const store = describeStore(config.databaseUrl)
    return handlers.handleAll({
      health: () => Effect.succeed({ status: "ok" as const }),
      // Migrations run before the server listens, so a reachable database means a migrated one.
      ready: () =>
        sql`SELECT 1`.pipe(
          Effect.as({ status: "ready" as const, store, providers: providers.status }),
          Effect.mapError(
            (error) =>
              new UnavailableError({
                error: { code: "store_unavailable", message: `store ${store}: ${error.message}` },
              }),
          ),
        ),
    })
  }),
)
