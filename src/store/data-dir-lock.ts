import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"

export const lockFileName = "dac.lock"

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * The embedded store is one PGlite directory, and PGlite takes no lock of its own: two processes
 * writing it (a gateway and the keys CLI, or two gateways) would corrupt it. So whoever opens it
 * writes its pid to `DATA_DIR/dac.lock` and removes it on close; a lock left by a process that is
 * gone (a crash) is taken over.
 */
export const lockDataDir = (dataDir: string) => {
  const path = join(dataDir, lockFileName)
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        try {
          writeFileSync(path, String(process.pid), { flag: "wx" })
          return
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
        }
        const holder = Number(readFileSync(path, "utf8").trim())
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
          throw new Error(
            `the embedded store in ${dataDir} is in use by process ${holder} (a running gateway?): PGlite allows one process at a time. Stop it first, or, while it runs, manage keys through its admin API (ADMIN_API_KEY). If no such process is running, delete ${path}.`,
          )
        }
        writeFileSync(path, String(process.pid))
      },
      catch: (error) => (error instanceof Error ? error : new Error(String(error))),
    }),
    () => Effect.sync(() => rmSync(path, { force: true })),
  )
}
