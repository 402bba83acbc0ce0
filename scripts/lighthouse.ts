/**
 * `npm run lighthouse`: Lighthouse (performance, accessibility, best practices) on the web app's
 * pages, in Debian's Chromium, against a gateway of its own (or `--url`). Fails below 90.
 */
import { execFileSync } from "node:child_process"
import * as chromeLauncher from "chrome-launcher"
import lighthouse from "lighthouse"
import { chromium } from "playwright-core"
import { gatewayFor } from "./harness.ts"

const categories = ["performance", "accessibility", "best-practices"] as const
const threshold = 90
const pages = [
  { name: "chat, first load (sign-in)", path: "/", signedIn: false },
  { name: "chat, signed in (its threads listed)", path: "/", signedIn: true },
  { name: "dashboard", path: "/dashboard", signedIn: false },
]

const chromePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim()
const gateway = await gatewayFor()
const chrome = await chromeLauncher.launch({
  chromePath,
  chromeFlags: ["--headless=new", "--no-sandbox", "--disable-gpu"],
})
let failed = false
try {
  // A key in the browser's storage (as after signing in) and a thread with a streamed reply in it.
  const auth = await gateway.auth("lighthouse")
  const thread = (await (
    await fetch(`${gateway.baseUrl}/api/threads`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ title: "Lighthouse" }),
    })
  ).json()) as { thread_id: string }
  await fetch(`${gateway.baseUrl}/api/threads/${thread.thread_id}/messages`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ role: "user", content: "Hello", provider: "mock", model: "faststream-ttft" }),
  })
  const key = (auth.authorization ?? "").replace(/^Bearer /, "")
  for (const page of pages) {
    const browser = await chromium.connectOverCDP(`http://127.0.0.1:${chrome.port}`)
    const tab = await browser.contexts()[0]!.newPage()
    await tab.goto(`${gateway.baseUrl}/favicon.svg`)
    await tab.evaluate(
      ([signedIn, value]) => (signedIn ? localStorage.setItem("dac.apiKey", value) : localStorage.clear()),
      [page.signedIn, key] as const,
    )
    await tab.close()
    await browser.close()
    const result = await lighthouse(
      `${gateway.baseUrl}${page.path}`,
      {
        port: chrome.port,
        output: "json",
        logLevel: "error",
        onlyCategories: [...categories],
        disableStorageReset: true,
      },
      // The desktop preset would flatter the page: score it as Lighthouse's default (a phone, throttled).
      undefined,
    )
    if (result === undefined) throw new Error(`lighthouse returned nothing for ${page.path}`)
    const scores = categories.map((category) => {
      const score = Math.round((result.lhr.categories[category]?.score ?? 0) * 100)
      if (score < threshold) failed = true
      return `${category} ${score}`
    })
    const lcp = result.lhr.audits["largest-contentful-paint"]?.numericValue ?? Number.NaN
    console.log(`lighthouse ${page.name} ${page.path}: ${scores.join(", ")}; LCP ${Math.round(lcp)} ms`)
    for (const category of categories) {
      for (const ref of result.lhr.categories[category]?.auditRefs ?? []) {
        const audit = result.lhr.audits[ref.id]
        if (ref.weight > 0 && audit?.score !== null && audit?.score !== undefined && audit.score < 0.9) {
          console.log(`  ${category}: ${audit.id}: ${audit.title} (${audit.displayValue ?? audit.score})`)
          const items = (audit.details as { items?: ReadonlyArray<unknown> } | undefined)?.items ?? []
          for (const item of items.slice(0, 3)) console.log(`    ${JSON.stringify(item).slice(0, 200)}`)
        }
      }
    }
  }
} finally {
  await chrome.kill()
  await gateway.close()
}
if (failed) {
  console.error(`lighthouse: a score is below ${threshold}`)
  process.exit(1)
}
