import { mkdirSync } from "node:fs"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { Context, Effect, Layer } from "effect"

/**
 * An embedded PostgreSQL (PGlite, WASM) served on a loopback port, so the same `@effect/sql-pg`
 * client and the same SQL serve both backends. PGlite is one backend process: one connection.
 */
export class EmbeddedPostgres extends Context.Service<
  EmbeddedPostgres,
  { readonly host: string; readonly port: number }
>()("dac/store/EmbeddedPostgres") {
  /** `dataDir` keeps the data across restarts; `undefined` keeps it in memory. */
  static readonly layer = (dataDir: string | undefined) =>
    Layer.effect(
      EmbeddedPostgres,
      Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
            const db = await PGlite.create(dataDir)
            const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0 })
            await server.start()
            const [host, port] = server.getServerConn().split(":")
            return { db, server, host: host!, port: Number(port) }
          },
          catch: (cause) =>
            new Error(`embedded PostgreSQL failed to start in ${dataDir ?? "memory"}: ${cause}`),
        }),
        ({ db, server }) =>
          Effect.promise(async () => {
            await server.stop()
            await db.close()
          }),
      ).pipe(
        Effect.map(({ host, port }) => EmbeddedPostgres.of({ host, port })),
        Effect.orDie,
      ),
    )
}
