import { execFileSync } from "node:child_process"
import { type Browser, chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RequestLogEntry } from "../../src/store/request-log-repo.ts"
import { timeSeries } from "../../src/telemetry/timeseries.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

const chromiumPath = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || null
  } catch {
    return null
  }
})()
if (chromiumPath === null)
  console.warn(
    "test/web/dashboard.test.ts: browser tests skipped, no chromium on PATH (apt-get install -y chromium)",
  )

const entry = (over: Partial<RequestLogEntry>): RequestLogEntry => ({
  request_id: crypto.randomUUID(),
  org_id: "o",
  thread_id: null,
  provider: "mock",
  model: "m",
  coalesce: "leader",
  status: "ok",
  error_code: null,
  queue_wait_ms: 1,
  ttft_ms: 10,
  latency_ms: 100,
  input_tokens: 1,
  output_tokens: 1,
  ...over,
})

describe("timeSeries", () => {
  it("puts each request in its time bucket, every bucket present, and totals the window", () => {
    // Buckets are aligned to the step; the last one is the current, partial one.
    const now = 1_005_000
    const series = timeSeries(
      [
        { at: now - 54_000, entry: entry({ ttft_ms: 30 }) },
        { at: now - 100, entry: entry({ coalesce: "follower", provider: "openai", status: "error" }) },
        { at: now - 200, entry: entry({ coalesce: "cache_hit", ttft_ms: null }) },
        { at: now - 120_000, entry: entry({}) }, // before the window
      ],
      now,
      60_000,
      10_000,
    )
    expect(series.buckets).toHaveLength(6)
    expect(series.buckets.map((b) => b.count)).toEqual([1, 0, 0, 0, 0, 2])
    expect(series.total).toMatchObject({ count: 3, errors: 1, leaders: 1, followers: 1, cache_hits: 1 })
    expect(series.total.by_provider).toEqual({ mock: 2, openai: 1 })
    expect(series.buckets.at(-1)!.ttft_ms.p50).toBe(10)
    expect(series.to - series.from).toBe(60_000)
  })
})

describe.skipIf(chromiumPath === null)("the dashboard in Chromium", () => {
  let gateway: RunningGateway
  let browser: Browser
  const opsToken = `ops-${crypto.randomUUID()}`

  beforeAll(async () => {
    gateway = await startGateway({ OPS_TOKEN: opsToken, MOCK_TOKENS: "20", MOCK_TOKEN_INTERVAL_MS: "10" })
    browser = await chromium.launch({ executablePath: chromiumPath!, args: ["--no-sandbox"] })
  })
  afterAll(async () => {
    await browser?.close()
    await gateway?.close()
  })

  it("asks for the ops token, then shows a burst's numbers and the pacer, refreshing by itself", async () => {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text())
    })
    page.on("pageerror", (e) => errors.push(String(e)))
    await page.goto(`${gateway.baseUrl}/dashboard`)
    expect((await fetch(`${gateway.baseUrl}/ops/series`)).status).toBe(401)
    await page.getByLabel("Ops token").fill(opsToken)
    await page.getByRole("button", { name: "Open the dashboard" }).click()
    await page.getByRole("heading", { name: "Pacers" }).waitFor()
    errors.length = 0 // the browser logs the refused (401) call itself

    // A burst: 20 identical requests at once make one leader and 19 followers.
    const client = api(gateway.baseUrl, `dash-${crypto.randomUUID()}`)
    const thread = (await client.post("/api/threads", { title: "burst" })).json.thread_id
    const body = { role: "user", content: "burst", provider: "mock", model: "faststream-ttft" }
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => client.post(`/api/threads/${thread}/messages`, body)),
    )
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200))

    const tile = (label: string) => page.locator(`[data-tile="${label}"] .value`).textContent()
    await expect.poll(() => tile("requests"), { timeout: 6_000 }).toBe("20")
    expect(await tile("leaders")).toBe("1")
    expect(await tile("followers")).toBe("19")
    expect(await tile("followers per leader")).toBe("19.0")
    expect(await tile("error rate")).toBe("0.0 %")
    await expect.poll(() => page.getByRole("status").textContent()).toContain("No alert threshold breached")
    expect(await page.locator("canvas").count()).toBeGreaterThanOrEqual(6)
    expect(await page.locator('table[aria-labelledby="pacers"] tbody th').allTextContents()).toContain("mock")
    // Failures push the error rate over 1 %: the breach is said plainly and its tile marked.
    for (const content of ["fail 1", "fail 2"]) {
      await client.post(`/api/threads/${thread}/messages`, { ...body, content, model: "failing-midstream" })
    }
    await expect
      .poll(() => page.getByRole("status").textContent(), { timeout: 6_000 })
      .toMatch(/Error rate .* is over 1\.0 %/)
    expect(await page.locator('[data-tile="error rate"]').getAttribute("class")).toContain("breach")
    if (process.env.WEB_SCREENSHOT === "1") {
      await page.setViewportSize({ width: 1100, height: 900 })
      await page.waitForTimeout(2_500) // a refresh at the new width
      await page.screenshot({ path: "docs/dashboard.png", fullPage: true })
    }
    expect(errors).toEqual([])
    await page.close()
  })
})
