/**
 * The embedded store's own thread: PGlite (PostgreSQL compiled to WASM) and the socket server that
 * serves it on loopback. PGlite runs each query synchronously on the thread that owns it: on the
 * gateway's thread, every query stalled every reply in flight (a request-log batch for tens of
 * milliseconds), and its CPU shared one core with them. Here it has a thread, and the second core,
 * to itself. Started and stopped by `EmbeddedPostgres` (embedded.ts), which it answers with
 * `EmbeddedWorkerReply` messages.
 */
import { mkdirSync } from "node:fs"
import type { Server, Socket } from "node:net"
import { parentPort, workerData } from "node:worker_threads"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { type EmbeddedWorkerData, type EmbeddedWorkerReply, stopMessage } from "./embedded-protocol.ts"

/**
 * pglite-socket writes every piece of every reply to the socket as PGlite produces it: a system call
 * per protocol message, five or more per query. Corked until the current burst of work is done, the
 * replies to one batch of messages leave in one write.
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

const serve = async (port: NonNullable<typeof parentPort>, dataDir: string | undefined) => {
  const reply = (message: EmbeddedWorkerReply) => port.postMessage(message)
  let started: { readonly db: PGlite; readonly server: PGLiteSocketServer }
  try {
    if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
    const db = await PGlite.create(dataDir)
    const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0 })
    await server.start()
    // The listening server is private in pglite-socket 0.2.17 (pinned); without it, replies are
    // simply written piece by piece.
    const listening = (server as unknown as { readonly server?: Server | null }).server
    listening?.on("connection", batchWrites)
    const [host, listeningPort] = server.getServerConn().split(":")
    started = { db, server }
    reply({ _tag: "Listening", host: host!, port: Number(listeningPort) })
  } catch (cause) {
    reply({ _tag: "Failed", message: String(cause) })
    port.close()
    return
  }
  port.on("message", async (message) => {
    if (message !== stopMessage) return
    await started.server.stop()
    await started.db.close()
    reply({ _tag: "Stopped" })
    port.close()
  })
}

if (parentPort !== null) {
  void serve(parentPort, (workerData as EmbeddedWorkerData).dataDir)
}
