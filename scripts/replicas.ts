import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort } from "./free-port.ts"

/** The repository's root: replicas run its `src/main.ts` on the Node that runs this script. */
const root = join(dirname(fileURLToPath(import.meta.url)), "..")

export interface Replica {
  readonly id: string
  readonly url: string
  readonly port: number
  readonly process: ChildProcess
  /** Everything it wrote (stdout and stderr), for a test's failure message. */
  readonly output: () => string
}

export interface ClusterOptions {
  readonly replicas: number
  /** The first replica's port; the others follow (0: free ports). */
  readonly basePort?: number
  /** Environment of every replica (REDIS_URL, DATABASE_URL, providers, …) on top of this process's. */
  readonly env: Record<string, string>
  /** Lines of output to keep per replica. */
  readonly keepLines?: number
}

const waitHealthy = async (replica: Replica, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (replica.process.exitCode !== null) {
      throw new Error(`replica ${replica.id} exited (${replica.process.exitCode}):\n${replica.output()}`)
    }
    try {
      const response = await fetch(`${replica.url}/health`)
      if (response.ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`replica ${replica.id} not healthy after ${timeoutMs} ms:\n${replica.output()}`)
}

/** Starts one replica process (`node src/main.ts`) with REPLICA_ID and PORT set. */
export const startReplica = async (
  id: string,
  port: number,
  env: Record<string, string>,
  keepLines = 200,
): Promise<Replica> => {
  const child = spawn(
    process.execPath,
    ["--disable-warning=ExperimentalWarning", join(root, "src/main.ts")],
    {
      cwd: root,
      env: { ...process.env, HOST: "127.0.0.1", ...env, PORT: String(port), REPLICA_ID: id },
      stdio: ["ignore", "pipe", "pipe"],
    },
  )
  const lines: Array<string> = []
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(line)
    if (lines.length > keepLines) lines.splice(0, lines.length - keepLines)
  }
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  const replica: Replica = {
    id,
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    output: () => lines.join("\n"),
  }
  await waitHealthy(replica, 30_000)
  return replica
}

/** Stops a replica with SIGTERM (its graceful shutdown), SIGKILL after `graceMs`. */
export const stopReplica = async (replica: Replica, graceMs = 5_000) => {
  const child = replica.process
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, "exit")
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
  await exited
  clearTimeout(timer)
}

/**
 * N replicas, REPLICA_COUNT=N, each on its own port. The first starts alone (it applies the
 * migrations), then the others together.
 */
export const startCluster = async (options: ClusterOptions): Promise<ReadonlyArray<Replica>> => {
  const ports: Array<number> = []
  for (let i = 0; i < options.replicas; i++) {
    ports.push(options.basePort ? options.basePort + i : await freePort())
  }
  const env = { REPLICA_COUNT: String(options.replicas), ...options.env }
  const first = await startReplica("r1", ports[0]!, env, options.keepLines)
  const rest = await Promise.allSettled(
    ports.slice(1).map((port, i) => startReplica(`r${i + 2}`, port, env, options.keepLines)),
  )
  const started = rest.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []))
  const failed = rest.find((r) => r.status === "rejected")
  if (failed !== undefined) {
    await stopCluster([first, ...started])
    throw failed.reason
  }
  return [first, ...started]
}

export const stopCluster = (replicas: ReadonlyArray<Replica>) =>
  Promise.all(replicas.map((r) => stopReplica(r)))
