/**
 * The embedded store's own thread: PGlite (PostgreSQL compiled to WASM), served to its owner over
 * `MessageChannel`s. PGlite runs each query synchronously on the thread that owns it: on the
 * gateway's thread, every query stalled every reply in flight (a request-log batch for tens of
 * milliseconds), and its CPU shared one core with them. Here it has a thread, and the second core,
 * to itself. Started and stopped by `EmbeddedPostgres` (embedded.ts), which it answers with
 * `EmbeddedWorkerReply` messages.
 *
 * It listens on no socket. It used to serve a loopback TCP port with no password: any local process
 * could read every tenant's threads, or take PGlite's one connection and wedge the gateway. A
 * connection now exists only when the owner hands this thread one end of a channel, which nothing
 * outside the process can do.
 */
import { mkdirSync } from "node:fs"
import { type MessagePort, parentPort, workerData } from "node:worker_threads"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketHandler, PGLiteSocketServer } from "@electric-sql/pglite-socket"
import {
  type ConnectMessage,
  type EmbeddedWorkerData,
  type EmbeddedWorkerReply,
  stopMessage,
} from "./embedded-protocol.ts"
import { PortStream } from "./port-stream.ts"

type QueryQueue = ConstructorParameters<typeof PGLiteSocketHandler>[0]["queryQueue"]

/**
 * pglite-socket's handler speaks the protocol (startup, SSL and cancel requests, a transaction
 * rolled back when its connection goes) over any socket-like stream, but the queue it needs, which
 * runs one message at a time and keeps a transaction's statements together, is built only by its
 * server. A server that is never started listens on nothing; its queue is a private field in
 * pglite-socket 0.2.17 (pinned), checked here so an upgrade that moves it fails at start-up.
 */
const queryQueueOf = (db: PGlite): QueryQueue => {
  const queue = (new PGLiteSocketServer({ db }) as unknown as { readonly queryQueue?: QueryQueue }).queryQueue
  if (queue === undefined) throw new Error("pglite-socket's server has no queryQueue (was it upgraded?)")
  return queue
}

const isConnect = (message: unknown): message is ConnectMessage =>
  typeof message === "object" && message !== null && (message as { _tag?: unknown })._tag === "Connect"

const serve = async (port: NonNullable<typeof parentPort>, dataDir: string | undefined) => {
  const reply = (message: EmbeddedWorkerReply) => port.postMessage(message)
  let db: PGlite
  let queryQueue: QueryQueue
  try {
    if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
    db = await PGlite.create(dataDir)
    await db.waitReady
    queryQueue = queryQueueOf(db)
  } catch (cause) {
    reply({ _tag: "Failed", message: String(cause) })
    port.close()
    return
  }
  const handlers = new Set<PGLiteSocketHandler>()
  const connect = (channel: MessagePort) => {
    const handler = new PGLiteSocketHandler({ queryQueue, closeOnDetach: true })
    handlers.add(handler)
    const forget = () => handlers.delete(handler)
    handler.addEventListener("close", forget)
    handler.addEventListener("error", forget)
    // The handler types its socket as a net.Socket; it uses only what PortStream has (see there).
    void handler.attach(new PortStream(channel) as unknown as Parameters<PGLiteSocketHandler["attach"]>[0])
  }
  let stopping = false
  port.on("message", async (message: unknown) => {
    if (isConnect(message)) {
      if (stopping) message.port.close()
      else connect(message.port)
      return
    }
    if (message !== stopMessage || stopping) return
    stopping = true
    await Promise.all([...handlers].map((handler) => handler.detach(true)))
    await db.close()
    reply({ _tag: "Stopped" })
    port.close()
  })
  reply({ _tag: "Ready" })
}

if (parentPort !== null) {
  void serve(parentPort, (workerData as EmbeddedWorkerData).dataDir)
}
