import { Effect, Fiber, Layer } from "effect"
import { AppConfig } from "../config.ts"
import { Turns } from "../engine/turns.ts"
import { NodeServer } from "./server.ts"

/** How long, once every reply ended, the last responses may take to leave before sockets are cut. */
const lastWritesMs = 2_000

/**
 * A graceful stop (SIGTERM, or the end of the app's scope): built after the HTTP server, so it is
 * released before it. It stops accepting connections, lets replies that a request waits for finish
 * within `SHUTDOWN_GRACE_MS` and ends every stream with a retryable `shutting_down` (each reply's
 * text stored), waits for the responses to leave, and only then lets the server and the store close.
 */
export const GracefulShutdown = Layer.effectDiscard(
  Effect.gen(function* () {
    const server = yield* NodeServer
    const turns = yield* Turns
    const config = yield* AppConfig
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Effect.logInfo("shutting down", { grace_ms: config.shutdownGraceMs })
        const closed = Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeIdleConnections()
        })
        const stopped = yield* Effect.forkDetach(closed)
        yield* turns.drain(config.shutdownGraceMs)
        // The last terminal frames and waiting replies are on their way; idle sockets close as they go.
        const idle = setInterval(() => server.closeIdleConnections(), 50)
        yield* Fiber.await(stopped).pipe(
          Effect.timeoutOrElse({ duration: lastWritesMs, orElse: () => Effect.void }),
        )
        clearInterval(idle)
        server.closeAllConnections()
        yield* Effect.logInfo("stopped")
      }),
    )
  }),
)
