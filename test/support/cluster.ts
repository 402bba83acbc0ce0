import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import { once } from "node:events"
import { connect } from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import { inject } from "vitest"
import { freePort } from "../../scripts/free-port.ts"

/** Whether something accepts TCP connections at 127.0.0.1:port (within half a second). */
export const reachable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
    socket.setTimeout(500, () => done(false))
  })

const hasCommand = (command: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/**
 * Why the multi-replica tests cannot run here (undefined: they can). They need Redis at
 * 127.0.0.1:6379, PostgreSQL at 127.0.0.1:5432 (replica processes share a real database: the
 * embedded store is one process's), `psql` to make a database for them, and `redis-server` to run a
 * Redis of their own that they may stop.
 */
export const clusterSkipReason = async (): Promise<string | undefined> => {
  if (!(await reachable(6379))) return "no Redis at 127.0.0.1:6379"
  if (!(await reachable(5432))) return "no PostgreSQL at 127.0.0.1:5432"
  if (inject("backend") !== "postgres" && !hasCommand("psql")) return "psql not found"
  if (!hasCommand("redis-server")) return "redis-server not found"
  return undefined
}

/** The suite's PostgreSQL, or (on the embedded pass) a fresh database on the local one, dropped after. */
export const clusterDatabase = (): { readonly url: string; readonly drop: () => void } => {
  if (inject("backend") === "postgres") return { url: inject("databaseUrl"), drop: () => {} }
  const name = `dac_cluster_${Date.now()}_${process.pid}`
  const psql = (sql: string) =>
    execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], {
      stdio: "ignore",
    })
  psql(`CREATE DATABASE ${name}`)
  return {
    url: `postgres://postgres@127.0.0.1:5432/${name}`,
    drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  }
}

/** A redis-server of the test's own on a free port (no persistence), to stop and start again. */
export const ownRedis = async () => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      {
        stdio: "ignore",
      },
    )
    for (let i = 0; i < 50 && !(await reachable(port)); i++) await new Promise((r) => setTimeout(r, 50))
  }
  /** SIGKILL: a Redis that dies, not one that says goodbye. */
  const kill = async () => {
    const running = child
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = once(running, "exit")
    running.kill("SIGKILL")
    await exited
  }
  await start()
  return { url: `redis://127.0.0.1:${port}`, port, start, kill }
}

/** A fresh key prefix, so runs (and files) never share Redis keys. */
export const runPrefix = (name: string) => `dac-test-${name}-${Date.now()}-${process.pid}:`

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Upstream arrivals (performance.now() ms) counted per whole second from `from`. */
export const perSecond = (times: ReadonlyArray<number>, from: number, to: number) => {
  const buckets: Array<number> = []
  for (let s = from; s + 1000 <= to; s += 1000)
    buckets.push(times.filter((t) => t >= s && t < s + 1000).length)
  return buckets
}

export interface UpstreamStats {
  /** Epoch ms of each POST, by provider. */
  readonly arrivals: Record<string, ReadonlyArray<number>>
  readonly maxConcurrency: Record<string, number>
}

/** The fake upstream in a child process (upstream-process.ts), its clock independent of the test's. */
export const upstreamProcess = async (replies: Record<string, unknown>) => {
  const child = fork(
    join(dirname(fileURLToPath(import.meta.url)), "upstream-process.ts"),
    [JSON.stringify(replies)],
    {
      execArgv: ["--disable-warning=ExperimentalWarning"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    },
  )
  const [ready] = (await once(child, "message")) as [{ env: Record<string, string> }]
  return {
    env: ready.env,
    stats: async (): Promise<UpstreamStats> => {
      child.send({ type: "stats" })
      const [stats] = (await once(child, "message")) as [UpstreamStats]
      return stats
    },
    close: async () => {
      const exited = once(child, "exit")
      child.disconnect()
      await exited
    },
  }
}

/** Deletes every key under a test's prefix (the pacer's state hashes have no expiry). */
export const dropPrefix = async (url: string, prefix: string) => {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await client.connect()
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== "0")
  } catch {
    // Redis gone: nothing to clean.
  } finally {
    client.disconnect()
  }
}
