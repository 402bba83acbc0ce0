import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, inject, it } from "vitest"
import { freePort } from "../../scripts/free-port.ts"

const dirs: Array<string> = []
const running = new Set<ChildProcess>()
afterAll(() => {
  for (const child of running) child.kill("SIGKILL")
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "dac-keys-"))
  dirs.push(dir)
  return dir
}

/** The environment without the suite's DATABASE_URL (the embedded store), plus `extra`. */
const envWith = (extra: Record<string, string>) => {
  const { DATABASE_URL: _, ...inherited } = process.env
  return { ...inherited, LOG_LEVEL: "Warn", ...extra }
}

const keys = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "scripts/keys.ts", ...args],
      { env: envWith(env) },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }),
    )
  })

const cliRoundTrip = async (env: Record<string, string>) => {
  const org = `cli-${crypto.randomUUID()}`
  const created = await keys(["create", "--org", org, "--name", "ci", "--rpm", "30"], env)
  expect(created.code, created.stderr).toBe(0)
  const issued = JSON.parse(created.stdout)
  expect(issued).toMatchObject({ org_id: org, name: "ci", limits: { requests_per_minute: 30 } })
  expect(issued.key).toMatch(/^dac_/)
  const listed = await keys(["list", "--org", org], env)
  expect(listed.code, listed.stderr).toBe(0)
  const { keys: list } = JSON.parse(listed.stdout)
  expect(list.map((k: { key_id: string }) => k.key_id)).toEqual([issued.key_id])
  expect(listed.stdout).not.toContain(issued.key)
  const revoked = await keys(["revoke", issued.key_id], env)
  expect(revoked.code, revoked.stderr).toBe(0)
  expect(JSON.parse(revoked.stdout).revoked_at).not.toBeNull()
  const bad = await keys(["create"], env)
  expect(bad.code).toBe(1)
  expect(bad.stderr).toContain("create needs --org")
}

describe("npm run keys", () => {
  it("creates, lists and revokes keys on an embedded store (DATA_DIR)", async () => {
    await cliRoundTrip({ DATA_DIR: tempDir() })
  }, 60_000)

  it("refuses an embedded store another process holds, saying why", async () => {
    const dir = tempDir()
    // This test's own process stands in for a running gateway.
    writeFileSync(join(dir, "dac.lock"), String(process.pid))
    const answer = await keys(["list"], { DATA_DIR: dir })
    expect(answer.code).toBe(1)
    expect(answer.stderr).toMatch(/in use by process \d+.*admin API/)
  }, 60_000)

  it.runIf(inject("backend") === "postgres")(
    "works on DATABASE_URL",
    async () => {
      await cliRoundTrip({ DATABASE_URL: inject("databaseUrl"), DATABASE_POOL_SIZE: "2" })
    },
    60_000,
  )
})

describe("the quick start", () => {
  it("a fresh npm start writes one demo key to DATA_DIR/demo-key (0600), logs its path, not the secret", async () => {
    const dir = tempDir()
    const port = await freePort()
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "src/main.ts"], {
      env: envWith({ PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dir, LOG_LEVEL: "Info" }),
      stdio: ["ignore", "pipe", "pipe"],
    })
    running.add(child)
    let output = ""
    child.stdout?.on("data", (chunk) => {
      output += chunk
    })
    child.stderr?.on("data", (chunk) => {
      output += chunk
    })
    const startedAt = Date.now()
    while (
      !(await fetch(`http://127.0.0.1:${port}/health`).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (child.exitCode !== null || Date.now() - startedAt > 30_000) throw new Error(`no start:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const file = join(dir, "demo-key")
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const key = readFileSync(file, "utf8").trim()
    expect(key).toMatch(/^dac_/)
    expect(output).toContain(file)
    expect(output).not.toContain(key)
    const base = `http://127.0.0.1:${port}`
    const created = await fetch(`${base}/api/threads`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "first" }),
    })
    expect(created.status).toBe(201)
    expect((await fetch(`${base}/api/threads`)).status).toBe(401)
    const exited = new Promise((resolve) => child.once("exit", resolve))
    child.kill("SIGTERM")
    await exited
    running.delete(child)
  }, 60_000)
})
