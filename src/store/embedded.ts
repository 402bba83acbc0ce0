import { mkdirSync } from "node:fs"
import type { Duplex } from "node:stream"
import { MessageChannel, Worker } from "node:worker_threads"
import { Context, Duration, Effect, Layer } from "effect"
import { lockDataDir } from "./data-dir-lock.ts"
import {
  type ConnectMessage,
  type EmbeddedWorkerData,
  type EmbeddedWorkerReply,
  stopMessage,
} from "./embedded-protocol.ts"
import { PortStream } from "./port-stream.ts"

/** How long a clean stop (the database flushed and closed) may take before the thread is ended. */
const stopTimeout = Duration.seconds(10)

const workerUrl = new URL("./embedded-worker.ts", import.meta.url)

/** Starts the store's thread; succeeds once it is ready, fails with the reason it could not start. */
const startWorker = (dataDir: string | undefined) =>
  Effect.callback<Worker, Error>((resume) => {
    const workerData: EmbeddedWorkerData = { dataDir }
    const worker = new Worker(workerUrl, { workerData })
    const onError = (error: Error) => failed(String(error))
    const onExit = (code: number) => failed(`its thread exited with code ${code}`)
    const failed = (reason: string) =>
      resume(
        Effect.fail(new Error(`embedded PostgreSQL failed to start in ${dataDir ?? "memory"}: ${reason}`)),
      )
    worker.once("message", (reply: EmbeddedWorkerReply) => {
      if (reply._tag !== "Ready") return failed(reply._tag === "Failed" ? reply.message : reply._tag)
      worker.off("error", onError).off("exit", onExit)
      resume(Effect.succeed(worker))
    })
    worker.once("error", onError).once("exit", onExit)
    return Effect.promise(() => worker.terminate())
  })

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
 * An embedded PostgreSQL (PGlite, WASM) on its own thread (embedded-worker.ts), so its queries never
 * stall the gateway's event loop, reached by the same `@effect/sql-pg` client and the same SQL as
 * the real one. `connect` opens a connection over a `MessageChannel` to that thread: there is no
 * port or socket file, so no other process can read the data or take PGlite's one connection.
 */
export class EmbeddedPostgres extends Context.Service<
  EmbeddedPostgres,
  {
    /** A new connection's byte stream (`PgClient`'s `stream` option). */
    readonly connect: () => Duplex
  }
>()("dac/store/EmbeddedPostgres") {
  /** `dataDir` keeps the data across restarts; `undefined` keeps it in memory. */
  static readonly layer = (dataDir: string | undefined) =>
    Layer.effect(
      EmbeddedPostgres,
      Effect.gen(function* () {
        if (dataDir !== undefined) {
          yield* Effect.sync(() => mkdirSync(dataDir, { recursive: true }))
          // Released after the worker has stopped (finalizers run in reverse).
          yield* lockDataDir(dataDir)
        }
        const worker = yield* Effect.acquireRelease(startWorker(dataDir), stopWorker)
        // A crash of the store's thread after start-up: every query fails from then on; say why.
        const context = yield* Effect.context<never>()
        let exited = false
        worker.on("exit", () => {
          exited = true
        })
        worker.on("error", (error) =>
          Effect.runForkWith(context)(Effect.logError("embedded PostgreSQL's thread crashed", error)),
        )
        const connect = () => {
          const { port1, port2 } = new MessageChannel()
          const stream = new PortStream(port1)
          // A thread that is gone would never answer: the connection fails at once instead.
          if (exited) stream.destroy(new Error("embedded PostgreSQL's thread has stopped"))
          else worker.postMessage({ _tag: "Connect", port: port2 } satisfies ConnectMessage, [port2])
          return stream
        }
        return EmbeddedPostgres.of({ connect })
      }).pipe(Effect.orDie),
    )
}
