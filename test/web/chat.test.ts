import { execFileSync } from "node:child_process"
import { createServer, request as httpRequest, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { type RunningGateway, startGateway } from "../support/gateway.ts"

/** Debian's Chromium (`apt-get install -y chromium`); the tests skip, saying so, without it. */
const chromiumPath = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || null
  } catch {
    return null
  }
})()
if (chromiumPath === null)
  console.warn("test/web/chat.test.ts: skipped, no chromium on PATH (apt-get install -y chromium)")

const tokens = 30
const adminKey = `admin-${crypto.randomUUID()}`

/**
 * A pass-through proxy in front of the gateway, so a test can cut a reply stream's connection for
 * real: `cut()` destroys the sockets of the `…/messages/stream` responses in flight.
 */
const startProxy = async (target: string) => {
  const { port } = new URL(target)
  const streams = new Set<() => void>()
  const server: Server = createServer((req, res) => {
    const upstream = httpRequest(
      { host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        res.flushHeaders()
        if (req.url?.endsWith("/messages/stream")) {
          const cut = () => {
            req.socket.destroy()
            up.destroy()
          }
          streams.add(cut)
          res.on("close", () => streams.delete(cut))
        }
        up.on("data", (chunk: Buffer) => res.write(chunk))
        up.on("end", () => res.end())
        up.on("error", () => res.destroy())
      },
    )
    upstream.on("error", () => res.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Cuts every reply stream in flight; how many. */
    cut: () => {
      const cuts = [...streams]
      streams.clear()
      for (const cut of cuts) cut()
      return cuts.length
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

describe.skipIf(chromiumPath === null)("the chat page in Chromium", () => {
  let gateway: RunningGateway
  let proxy: Awaited<ReturnType<typeof startProxy>>
  let browser: Browser
  let page: Page
  let key: string
  let consoleErrors: string[]
  const org = `web-${crypto.randomUUID()}`

  const api = async (method: string, path: string, body?: unknown, bearer = key) => {
    const response = await fetch(`${gateway.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    // biome-ignore lint/suspicious/noExplicitAny: each test reads the shape it expects
    return { status: response.status, json: (await response.json()) as any }
  }

  const signIn = async () => {
    await page.goto(proxy.url)
    await page.getByLabel("API key").fill(key)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.getByRole("button", { name: "New thread" }).waitFor()
  }

  const send = async (text: string, model: string) => {
    await page.getByLabel("Model").fill(model)
    await page.getByLabel("Message").fill(text)
    await page.getByLabel("Message").press("Enter")
  }

  const lastReply = () => page.locator("li.message.assistant").last()

  beforeAll(async () => {
    gateway = await startGateway({
      AUTH_MODE: "keys",
      ADMIN_API_KEY: adminKey,
      MOCK_TOKENS: String(tokens),
      MOCK_TTFT_MS: "20",
      MOCK_TOKEN_INTERVAL_MS: "60",
    })
    proxy = await startProxy(gateway.baseUrl)
    key = (await api("POST", "/admin/keys", { org_id: org, name: "web" }, adminKey)).json.key
    browser = await chromium.launch({ executablePath: chromiumPath!, args: ["--no-sandbox"] })
  })

  afterAll(async () => {
    await browser?.close()
    await proxy?.close()
    await gateway?.close()
  })

  beforeEach(async () => {
    page = await browser.newPage()
    consoleErrors = []
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text())
    })
    page.on("pageerror", (error) => consoleErrors.push(String(error)))
  })

  it("signs in with a key (a wrong one is refused in words) and streams a reply token by token", async () => {
    await page.goto(proxy.url)
    await page.getByLabel("API key").fill("dac_wrong")
    await page.getByRole("button", { name: "Sign in" }).click()
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("did not accept this key")
    consoleErrors.length = 0 // the browser logs the refused call (401) itself
    await page.getByLabel("API key").fill(key)
    await page.getByRole("button", { name: "Sign in" }).click()

    await send("Hello page", "faststream-ttft")
    const text = lastReply().locator(".text")
    const seen = new Set<string>()
    await expect
      .poll(
        async () => {
          const now = (await text.textContent()) ?? ""
          if (now !== "…") seen.add(now)
          return lastReply().getAttribute("data-status")
        },
        { interval: 20, timeout: 10_000 },
      )
      .toBe("complete")
    expect(await text.textContent()).toBe(mockReplyText(tokens))
    // It grew in front of the reader: several partial texts, each a prefix of the whole.
    const partials = [...seen].filter((t) => t !== mockReplyText(tokens))
    expect(partials.length).toBeGreaterThanOrEqual(3)
    for (const partial of partials) expect(mockReplyText(tokens).startsWith(partial)).toBe(true)
    const facts = (await lastReply().locator(".facts").textContent()) ?? ""
    expect(facts).toMatch(/complete · mock\/faststream-ttft · TTFT \d+ ms · latency \d+ ms · leader/)
    await expect
      .poll(() => page.getByRole("navigation", { name: "Threads" }).textContent())
      .toContain("Hello page")
    if (process.env.WEB_SCREENSHOT === "1") {
      await page.setViewportSize({ width: 1100, height: 700 })
      await page.screenshot({ path: "docs/chat.png" })
    }
    expect(consoleErrors).toEqual([])
  })

  it("Stop mid-stream ends the reply as cancelled with its partial text, as stored", async () => {
    await signIn()
    await send("Go on forever", "never-ending")
    await expect.poll(() => lastReply().locator(".text").textContent()).toMatch(/( and){3}/)
    await page.getByRole("button", { name: "Stop" }).click()
    await expect.poll(() => lastReply().getAttribute("data-status")).toBe("cancelled")
    const shown = (await lastReply().locator(".text").textContent()) ?? ""
    expect(shown.length).toBeGreaterThan(0)
    expect(await lastReply().locator(".facts").textContent()).toMatch(/^cancelled/)
    const threads = (await api("GET", "/api/threads")).json.threads
    const thread = threads.find((t: { title: string }) => t.title === "Go on forever")
    const stored = (await api("GET", `/api/threads/${thread.thread_id}`)).json.messages.at(-1)
    expect(stored).toMatchObject({ role: "assistant", status: "cancelled", content: shown })
    expect(await page.getByRole("button", { name: "Send" }).isEnabled()).toBe(true)
    expect(consoleErrors).toEqual([])
  })

  const threadIdOf = async (title: string) =>
    (await api("GET", "/api/threads")).json.threads.find((t: { title: string }) => t.title === title)
      .thread_id

  it("a dropped connection mid-reply reconnects with Last-Event-ID: the whole text, no gap, no duplicate", async () => {
    await signIn()
    await send("Survive a drop", "faststream-ttft")
    await expect.poll(() => lastReply().locator(".text").textContent()).toMatch(/Hello from/)
    // Another client follows the same reply (a second tab, a coalesced follower), so the gateway
    // keeps generating while the page's own connection is down.
    const requestId = await lastReply().getAttribute("data-request-id")
    const viewer = fetch(
      `${gateway.baseUrl}/api/threads/${await threadIdOf("Survive a drop")}/stream/${requestId}`,
      {
        headers: { authorization: `Bearer ${key}` },
      },
    ).then((response) => response.text())
    await expect
      .poll(() => lastReply().locator(".text").textContent())
      .toMatch(/Hello from the DAC mock provider\.Hello/)
    expect(proxy.cut()).toBe(1)
    await expect.poll(() => page.locator(".note").textContent()).toMatch(/Connection lost|Reconnected/)
    await expect.poll(() => lastReply().getAttribute("data-status"), { timeout: 10_000 }).toBe("complete")
    expect(await lastReply().locator(".text").textContent()).toBe(mockReplyText(tokens))
    expect(await page.locator(".note").textContent()).toMatch(
      /Reply complete\. Reconnected: the reply continues/,
    )
    expect(await viewer).toContain("event: done")
    // The browser itself logs the cut response (net::ERR_…); the page logs nothing.
    expect(consoleErrors.filter((e) => !/net::ERR_/.test(e))).toEqual([])
  })

  it("a dropped connection of the reply's only client: the gateway holds the reply, and the page's reconnect continues it", async () => {
    await signIn()
    await send("Drop alone", "faststream-ttft")
    await expect.poll(() => lastReply().locator(".text").textContent()).toMatch(/Hello from/)
    // No other client follows it: the page's `x-dac-on-disconnect: hold` keeps it running.
    expect(proxy.cut()).toBe(1)
    await expect.poll(() => page.locator(".note").textContent()).toMatch(/Connection lost|Reconnected/)
    await expect.poll(() => lastReply().getAttribute("data-status"), { timeout: 10_000 }).toBe("complete")
    expect(await lastReply().locator(".text").textContent()).toBe(mockReplyText(tokens))
    expect(await page.locator(".note").textContent()).toMatch(/Reconnected: the reply continues/)
    const stored = (await api("GET", `/api/threads/${await threadIdOf("Drop alone")}`)).json.messages.at(-1)
    expect(stored).toMatchObject({ status: "complete", content: mockReplyText(tokens) })
    expect(consoleErrors.filter((e) => !/net::ERR_/.test(e))).toEqual([])
  })

  it("a reply still running when the page is reloaded is re-joined from the thread list", async () => {
    await signIn()
    await send("Reload me", "never-ending")
    await expect.poll(() => lastReply().locator(".text").textContent()).toMatch(/( and){2}/)
    const requestId = await lastReply().getAttribute("data-request-id")
    const threadId = await threadIdOf("Reload me")
    // Another client keeps the reply going while the page reloads (the page's hang-up detaches it).
    const viewer = new AbortController()
    const viewed = fetch(`${gateway.baseUrl}/api/threads/${threadId}/stream/${requestId}`, {
      headers: { authorization: `Bearer ${key}` },
      signal: viewer.signal,
    }).then((response) => response.text().catch(() => ""))
    await page.reload()
    await page.getByRole("button", { name: /^Reload me/ }).click()
    await expect.poll(() => lastReply().getAttribute("data-status")).toBe("streaming")
    const first = ((await lastReply().locator(".text").textContent()) ?? "").length
    await expect
      .poll(async () => ((await lastReply().locator(".text").textContent()) ?? "").length)
      .toBeGreaterThan(first)
    await page.getByRole("button", { name: "Stop" }).click()
    await expect.poll(() => lastReply().getAttribute("data-status")).toBe("cancelled")
    expect(await lastReply().locator(".text").textContent()).toMatch(/^( and)+$/)
    expect((await api("POST", `/api/threads/cancel/${requestId}?scope=generation`)).status).toBe(200)
    viewer.abort()
    await viewed
    expect(consoleErrors).toEqual([])
  })

  it("a thread reopened from the list shows its messages; model text is text, never markup", async () => {
    await signIn()
    const thread = (await api("POST", "/api/threads", { title: "<b>bold</b>" })).json
    await api("POST", `/api/threads/${thread.thread_id}/messages`, {
      role: "user",
      content: "<img src=x onerror=alert(1)>",
      provider: "mock",
      model: "faststream-ttft",
    })
    await page.reload()
    await page.getByRole("button", { name: /<b>bold<\/b>/ }).click()
    await expect
      .poll(() => page.locator("li.message.user .text").first().textContent())
      .toBe("<img src=x onerror=alert(1)>")
    expect(await page.locator("main img, nav b").count()).toBe(0)
    // Newest first: the thread made last is at the top.
    expect(await page.locator("nav .thread span").first().textContent()).toBe("<b>bold</b>")
    expect(await page.locator("li.message.assistant").last().getAttribute("data-status")).toBe("complete")
    expect(consoleErrors).toEqual([])
  })

  it("works by keyboard alone and at a phone's width; every control has a name", async () => {
    await page.setViewportSize({ width: 375, height: 740 })
    await page.goto(proxy.url)
    await page.getByLabel("API key").waitFor()
    // The key field has the focus; Enter signs in.
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")
    await page.getByRole("button", { name: "New thread" }).waitFor()
    await page.getByRole("textbox", { name: "Message" }).focus()
    await page.keyboard.type("By keyboard")
    await page.keyboard.press("Enter")
    await expect.poll(() => lastReply().getAttribute("data-status"), { timeout: 10_000 }).toBe("complete")
    // Evaluated in the page (the test's own types have no DOM).
    const fits = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(fits).toBe(true)
    const unnamed = await page.evaluate(`[...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => (el.labels?.length ?? 0) === 0 && !el.getAttribute("aria-label") && el.textContent.trim() === "")
      .map((el) => el.outerHTML)`)
    expect(unnamed).toEqual([])
    expect(consoleErrors).toEqual([])
  })
})
