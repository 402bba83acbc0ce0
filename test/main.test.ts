import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { freePort } from "../scripts/free-port.ts"
import { api } from "./support/gateway.ts"
import { openStream } from "./support/sse-client.ts"

const dataDir = mkdtempSync(join(tmpdir(), "dac-main-"))
const running = new Set<ChildProcess>()
afterAll(() => {
  for (const child of running) child.kill("SIGKILL")
  rmSync(dataDir, { recursive: true, force: true })
})

/** `npm start` as a user runs it: the real entry point, its own embedded store in DATA_DIR. */
const startProcess = async (port: number, extra: Record<string, string> = {}) => {
  const { DATABASE_URL: _, ...inherited } = process.env
  const env = {
    ...inherited,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    LOG_LEVEL: "Warn",
    AUTH_MODE: "header",
    ...extra,
  }
  const child = spawn(process.execPath, ["src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] })
  running.add(child)
  let output = ""
  child.stdout?.on("data", (chunk) => {
    output += chunk
  })
  child.stderr?.on("data", (chunk) => {
    output += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const startedAt = Date.now()
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited during start-up:\n${output}`)
    const healthy = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    )
    if (healthy) break
    if (Date.now() - startedAt > 30_000) throw new Error(`gateway did not start in 30 s:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    startupMs: Date.now() - startedAt,
    client: api(`http://127.0.0.1:${port}`, "org-main"),
    stop: async (signal: NodeJS.Signals) => {
      child.kill(signal)
      const code = await exited
      running.delete(child)
      return code
    },
    output: () => output,
  }
}

describe("the gateway process on its embedded store", () => {
  it("keeps threads across a restart, and marks a reply cut by a crash as interrupted", async () => {
    const port = await freePort()
    const first = await startProcess(port)
    expect(first.startupMs).toBeLessThan(30_000)
    const thread = await first.client.post("/api/threads", { title: "kept" })
    const threadId = thread.json.thread_id
    const sent = await first.client.post(`/api/threads/${threadId}/messages`, {
      role: "user",
      content: "remember me",
      provider: "mock",
      model: "faststream-ttft",
    })
    expect(sent.status).toBe(200)
    await first.stop("SIGTERM")

    const second = await startProcess(port)
    const reread = await second.client.get(`/api/threads/${threadId}`)
    expect(
      reread.json.messages.map((m: { content: string; status: string }) => [m.content, m.status]),
    ).toEqual([
      ["remember me", "complete"],
      [sent.json.assistant_message.content, "complete"],
    ])
    // A reply that never ends, then the process dies without any chance to clean up.
    void second.client
      .post(`/api/threads/${threadId}/messages`, {
        role: "user",
        content: "never finishes",
        provider: "mock",
        model: "never-ending",
      })
      .catch(() => undefined)
    // It is killed once the store has some of its text (written as it grows, every 250 ms).
    let seen = ""
    for (let i = 0; i < 100 && seen === ""; i++) {
      const now = await second.client.get(`/api/threads/${threadId}`)
      const reply = now.json.messages[3]
      if (reply?.status === "streaming" && reply.content !== "") seen = reply.content
      else await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(seen).not.toBe("")
    await second.stop("SIGKILL")

    const third = await startProcess(port)
    const afterCrash = await third.client.get(`/api/threads/${threadId}`)
    expect(afterCrash.json.messages.map((m: { role: string; status: string }) => [m.role, m.status])).toEqual(
      [
        ["user", "complete"],
        ["assistant", "complete"],
        ["user", "complete"],
        ["assistant", "interrupted"],
      ],
    )
    // The crash kept the text written before it: at least what was seen, maybe a little more.
    expect(afterCrash.json.messages[3].content.startsWith(seen)).toBe(true)
    await third.stop("SIGTERM")
  }, 120_000)

  it("on SIGTERM stops accepting, lets waiting replies finish, ends streams with shutting_down, stores the text so far and exits 0", async () => {
    const port = await freePort()
    const gateway = await startProcess(port, { SHUTDOWN_GRACE_MS: "1500", MOCK_TOKEN_INTERVAL_MS: "25" })
    const threadId = (await gateway.client.post("/api/threads", {})).json.thread_id
    const turn = (content: string, model: string) => ({ role: "user", content, provider: "mock", model })
    const stream = openStream(`http://127.0.0.1:${port}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": "org-main", "content-type": "application/json" },
      body: JSON.stringify(turn("streamed", "never-ending")),
    })
    await stream.until((events) => events.filter((e) => e.event === "delta").length >= 3)
    // One reply that finishes within the grace (40 tokens, 25 ms apart), one that never would.
    const finishing = gateway.client.post(`/api/threads/${threadId}/messages`, {
      ...turn("finishes", "faststream-ttft"),
      max_tokens: 40,
    })
    const endless = gateway.client.post(`/api/threads/${threadId}/messages`, turn("waits", "never-ending"))
    await new Promise((resolve) => setTimeout(resolve, 200))

    const code = gateway.stop("SIGTERM")
    await stream.done
    const last = stream.events.at(-1)!
    expect(last.event).toBe("error")
    expect(last.data).toMatchObject({ code: "shutting_down", retryable: true })
    expect(last.data.message).toContain(`Last-Event-ID: ${stream.events.at(-2)!.id}`)
    // No new connection is accepted once the stop began.
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow()
    const [finished, cut] = await Promise.all([finishing, endless])
    expect(finished.status).toBe(200)
    expect(finished.json.assistant_message.status).toBe("complete")
    expect(cut.status).toBe(503)
    expect(cut.json.error).toMatchObject({ code: "shutting_down", retryable: true })
    expect(await code).toBe(0)

    const again = await startProcess(port)
    const stored = (await again.client.get(`/api/threads/${threadId}`)).json.messages as Array<{
      role: string
      content: string
      status: string
    }>
    const replies = stored.filter((m) => m.role === "assistant")
    // What the streaming client saw is what was stored.
    expect(replies.find((m) => m.content === stream.text())?.status).toBe("interrupted")
    expect(replies.map((m) => m.status).sort()).toEqual(["complete", "interrupted", "interrupted"])
    await again.stop("SIGTERM")
  }, 120_000)
})
