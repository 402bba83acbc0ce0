import { createServer, type Server, type Socket } from "node:net"
import { expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { describe } from "vitest"
import { makeOpenAiCompatibleAdapter } from "../../src/providers/openai-compatible.ts"
import { collect, requestFor, testTimeouts } from "./harness.ts"

/** A TCP listener that accepts and then says nothing: a TLS handshake against it never completes. */
const silentServer = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ server: Server; sockets: Set<Socket>; port: number }>((resolve) => {
        const sockets = new Set<Socket>()
        const server = createServer((socket) => {
          sockets.add(socket)
          socket.on("close", () => sockets.delete(socket))
        })
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          resolve({ server, sockets, port: typeof address === "object" && address ? address.port : 0 })
        })
      }),
  ),
  ({ server, sockets }) =>
    Effect.promise(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resolve())
        }),
    ),
)

const settings = (baseUrl: string) => ({
  name: "openai" as const,
  apiKey: Option.some(Redacted.make("k")),
  baseUrl,
  rps: 1,
  burst: 1,
  concurrency: 4,
  maxQueue: 1,
})

describe("connecting", () => {
  it.live("a handshake that never completes is a Timeout in phase connect", () =>
    Effect.gen(function* () {
      const { port } = yield* silentServer
      const adapter = yield* makeOpenAiCompatibleAdapter(settings(`https://127.0.0.1:${port}/v1`), {
        ...testTimeouts,
        connectMs: 150,
      })
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      expect(outcome.error).toMatchObject({ _tag: "Timeout", phase: "connect", retryable: true })
      expect(outcome.events).toEqual([])
    }),
  )

  it.live("a refused connection is a NetworkError", () =>
    Effect.gen(function* () {
      // Bind a port, then free it: nothing listens there any more.
      const { port } = yield* Effect.scoped(silentServer)
      const adapter = yield* makeOpenAiCompatibleAdapter(
        settings(`http://127.0.0.1:${port}/v1`),
        testTimeouts,
      )
      const outcome = yield* collect(adapter.stream(requestFor("openai")))
      // The client is told which provider; the socket's words (address, port) are for the log.
      expect(outcome.error).toMatchObject({
        _tag: "NetworkError",
        message: "could not reach openai",
        detail: expect.stringMatching(/ECONNREFUSED/),
      })
      expect(outcome.error?.message).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/)
    }),
  )
})
