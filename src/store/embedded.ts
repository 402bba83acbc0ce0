import { mkdirSync } from "node:fs"
import type { Server, Socket } from "node:net"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { Context, Effect, Layer } from "effect"

/**
 * pglite-socket writes every piece of every reply to the socket as PGlite produces it: a system call
 * per protocol message, five or more per query, most of a turn's socket cost on this store. Corked
 * until the current burst of work is done, the replies to one batch of messages leave in one write.
 */
const batchWrites = (socket: Socket) => {
  const write = socket.write.bind(socket) as (...args: Array<unknown>) => boolean
  const uncork = () => socket.uncork()
  socket.write = ((...args: Array<unknown>) => {
    if (socket.writableCorked === 0) {
      socket.cork()
      process.nextTick(uncork)
    }
    return write(...args)
  }) as Socket["write"]
}

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
            // The listening server is private in pglite-socket 0.2.17 (pinned); without it, replies
            // are simply written piece by piece.
            const listening = (server as unknown as { readonly server?: Server | null }).server
            listening?.on("connection", batchWrites)
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
