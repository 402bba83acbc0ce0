import { Worker } from "node:worker_threads"
import { Context, Duration, Effect, Layer } from "effect"
import { type EmbeddedWorkerData, type EmbeddedWorkerReply, stopMessage } from "./embedded-protocol.ts"

/** How long a clean stop (the database flushed and closed) may take before the thread is ended. */
const stopTimeout = Duration.seconds(10)

const workerUrl = new URL("./embedded-worker.ts", import.meta.url)

/** Starts the store's thread; succeeds once it listens, fails with the reason it could not. */
const startWorker = (dataDir: string | undefined) =>
  Effect.callback<{ readonly worker: Worker; readonly host: string; readonly port: number }, Error>(
    (resume) => {
      const workerData: EmbeddedWorkerData = { dataDir }
      const worker = new Worker(workerUrl, { workerData })
      const onError = (error: Error) => failed(String(error))
      const onExit = (code: number) => failed(`its thread exited with code ${code}`)
      const failed = (reason: string) =>
        resume(
          Effect.fail(new Error(`embedded PostgreSQL failed to start in ${dataDir ?? "memory"}: ${reason}`)),
        )
      worker.once("message", (reply: EmbeddedWorkerReply) => {
        if (reply._tag !== "Listening") return failed(reply._tag === "Failed" ? reply.message : reply._tag)
        worker.off("error", onError).off("exit", onExit)
        resume(Effect.succeed({ worker, host: reply.host, port: reply.port }))
      })
      worker.once("error", onError).once("exit", onExit)
      return Effect.promise(() => worker.terminate())
    },
  )

/** Asks the thread to close the database cleanly, then ends it (at once if it did not in time). */
const stopWorker = (worker: Worker) =>
  Effect.callback<void>((resume) => {
    worker.once("exit", () => resume(Effect.void))
    worker.postMessage(stopMessage)
  }).pipe(
    Effect.timeout(stopTimeout),
    Effect.ignore,
    Effect.andThen(Effect.promise(() => worker.terminate())),
  )

/**
 * An embedded PostgreSQL (PGlite, WASM) served on a loopback port, so the same `@effect/sql-pg`
 * client and the same SQL serve both backends. PGlite is one backend process: one connection. It
 * runs on its own thread (embedded-worker.ts): its queries never stall the gateway's event loop.
 */
export class EmbeddedPostgres extends Context.Service<
  EmbeddedPostgres,
  { readonly host: string; readonly port: number }
>()("dac/store/EmbeddedPostgres") {
  /** `dataDir` keeps the data across restarts; `undefined` keeps it in memory. */
  static readonly layer = (dataDir: string | undefined) =>
    Layer.effect(
      EmbeddedPostgres,
      Effect.gen(function* () {
        const { worker, host, port } = yield* Effect.acquireRelease(startWorker(dataDir), ({ worker }) =>
          stopWorker(worker),
        )
        // A crash of the store's thread after start-up: every query fails from then on; say why.
        const context = yield* Effect.context<never>()
        worker.on("error", (error) =>
          Effect.runForkWith(context)(Effect.logError("embedded PostgreSQL's thread crashed", error)),
        )
        return EmbeddedPostgres.of({ host, port })
      }).pipe(Effect.orDie),
    )
}
