import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RunningGateway, startGateway } from "../support/gateway.ts"

describe("the web app's routes", () => {
  let gateway: RunningGateway
  beforeAll(async () => {
    gateway = await startGateway({ AUTH_MODE: "header", MODEL_ALIASES: "fast=mock/faststream-ttft" })
  })
  afterAll(() => gateway?.close())

  it("GET / serves the page, its script and style from this origin only, with a strict CSP", async () => {
    const page = await fetch(`${gateway.baseUrl}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'")
    const html = await page.text()
    expect(html).toContain('<script type="module" src="/assets/app.js">')
    for (const [path, type] of [
      ["/assets/app.js", "text/javascript; charset=utf-8"],
      ["/assets/app.css", "text/css; charset=utf-8"],
    ] as const) {
      const asset = await fetch(`${gateway.baseUrl}${path}`)
      expect(asset.status).toBe(200)
      expect(asset.headers.get("content-type")).toBe(type)
      expect((await asset.text()).length).toBeGreaterThan(100)
    }
  })

  it("GET /web/config tells the page the auth mode and the configured providers' models", async () => {
    const response = await fetch(`${gateway.baseUrl}/web/config`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { auth_mode: string; providers: unknown }
    expect(body.auth_mode).toBe("header")
    expect(body.providers).toEqual([
      { name: "mock", models: ["faststream-ttft", "failing-midstream", "never-ending", "tools"] },
    ])
  })
})
