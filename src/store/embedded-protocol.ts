import type { MessagePort } from "node:worker_threads"

/** The messages between the embedded store's thread (embedded-worker.ts) and its owner (embedded.ts). */

/** What the worker tells its owner: that it is ready for connections (or why it could not start), and that it stopped. */
export type EmbeddedWorkerReply =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "Failed"; readonly message: string }
  | { readonly _tag: "Stopped" }

/** What the owner sends: stop serving, close the database cleanly (its data directory stays usable). */
export const stopMessage = "stop"

/**
 * What the owner sends to open a connection: one end of a fresh `MessageChannel`, transferred. The
 * PostgreSQL wire protocol then travels over that channel as `Uint8Array` messages, both ways;
 * closing either end ends the connection.
 */
export interface ConnectMessage {
  readonly _tag: "Connect"
  readonly port: MessagePort
}

/** What the owner hands the worker when it starts it: `undefined` keeps the data in memory. */
export interface EmbeddedWorkerData {
  readonly dataDir: string | undefined
}
