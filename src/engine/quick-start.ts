import { chmodSync, mkdirSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"
import type { OrgId } from "../domain/ids.ts"
import { KeysRepo } from "../store/keys-repo.ts"
import { ApiKeys } from "./api-keys.ts"

/** The file a fresh embedded store's first key is written to, in DATA_DIR. */
export const demoKeyFile = "demo-key"
export const demoOrg = "demo" as OrgId

/** Hosts only this machine can reach. */
export const isLoopback = (host: string) =>
  host === "localhost" || host === "::1" || host.startsWith("127.") || host === "::ffff:127.0.0.1"

/**
 * Start-up checks of the authentication mode. In `keys` mode a fresh embedded store (no key yet)
 * gets one key for org `demo`, written to `DATA_DIR/demo-key` readable by its owner only, so the
 * quick start's curls work; the log names the file, never the secret. A PostgreSQL store is an
 * operator's: its keys come from the admin API or the CLI. In `header` mode, a warning when the
 * port is reachable beyond this machine (anyone who reaches it picks their org).
 */
export const AuthStartup = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (config.authMode === "header") {
      if (!isLoopback(config.host)) {
        yield* Effect.logWarning(
          "AUTH_MODE=header: the org comes from x-org-id, unauthenticated; only run it behind a trusted front end that sets that header",
          { host: config.host },
        )
      }
      return
    }
    if (Option.isSome(config.databaseUrl)) return
    const repo = yield* KeysRepo
    if ((yield* repo.count) > 0) return
    const issued = yield* (yield* ApiKeys).issue({ org: demoOrg, name: "demo", limits: {} })
    const path = resolve(join(config.dataDir, demoKeyFile))
    yield* Effect.sync(() => {
      mkdirSync(config.dataDir, { recursive: true })
      writeFileSync(path, `${issued.secret}\n`, { mode: 0o600 })
      // `mode` applies only to a new file: an old one keeps its mode unless told.
      chmodSync(path, 0o600)
    })
    yield* Effect.logInfo("created an API key for org demo; its secret is in this file (owner-only)", {
      path,
      key_id: issued.key.key_id,
    })
  }),
)
