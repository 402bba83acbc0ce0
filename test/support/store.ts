import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { inject } from "vitest"
import { MessagesRepo } from "../../src/store/messages-repo.ts"
import { RequestLogRepo } from "../../src/store/request-log-repo.ts"
import { postgresLayer } from "../../src/store/sql.ts"
import { ThreadsRepo } from "../../src/store/threads-repo.ts"

export type Repos = ThreadsRepo | MessagesRepo | RequestLogRepo

/** The repositories on the suite's database (migrated), without the rest of the gateway. */
export const ReposLive = Layer.mergeAll(ThreadsRepo.layer, MessagesRepo.layer, RequestLogRepo.layer).pipe(
  Layer.provideMerge(postgresLayer(Redacted.make(inject("databaseUrl")), Number(inject("databasePoolSize")))),
)

export const buildRepos = async () => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(ReposLive, scope))
  return {
    run: <A, E>(effect: Effect.Effect<A, E, Repos>) =>
      Effect.runPromise(Effect.provideContext(effect, context)),
    get: <I, S>(tag: Context.Key<I, S>) => Context.get(context as Context.Context<I>, tag),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}
