import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** The suite's database: DATABASE_URL when set, else one in-memory PGlite served on loopback. */
    databaseUrl: string
    /** Pool size the gateway may use against it (PGlite is a single backend: 1). */
    databasePoolSize: string
    backend: "postgres" | "embedded"
  }
}

/**
 * Starts the suite's database once (PGlite takes seconds to boot, so not per file). With
 * DATABASE_URL set, the suite runs on that PostgreSQL instead: CI runs both.
 */
export default async function setup(project: TestProject) {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") {
    project.provide("databaseUrl", url)
    project.provide("databasePoolSize", "10")
    project.provide("backend", "postgres")
    return
  }
  const db = await PGlite.create()
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 8 })
  await server.start()
  project.provide("databaseUrl", `postgres://postgres@${server.getServerConn()}/postgres`)
  project.provide("databasePoolSize", "1")
  project.provide("backend", "embedded")
  return async () => {
    await server.stop()
    await db.close()
  }
}
