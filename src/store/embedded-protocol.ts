/** The messages between the embedded store's thread (embedded-worker.ts) and its owner (embedded.ts). */

/** What the worker tells its owner: where it listens (or why it could not start), and that it stopped. */
export type EmbeddedWorkerReply =
  | { readonly _tag: "Listening"; readonly host: string; readonly port: number }
  | { readonly _tag: "Failed"; readonly message: string }
  | { readonly _tag: "Stopped" }

/** What the owner sends: stop serving, close the database cleanly (its data directory stays usable). */
export const stopMessage = "stop"

/** What the owner hands the worker when it starts it: `undefined` keeps the data in memory. */
export interface EmbeddedWorkerData {
  readonly dataDir: string | undefined
}
