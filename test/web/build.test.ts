import { readFileSync } from "node:fs"
import { gzipSync } from "node:zlib"
import { describe, expect, it } from "vitest"
import { buildWeb } from "../../web/build.ts"

const committed = (name: string) => readFileSync(new URL(`../../web/dist/${name}`, import.meta.url), "utf8")

describe("the web app's build", () => {
  it("is reproducible: a fresh build equals the committed web/dist", async () => {
    const files = await buildWeb()
    expect(Object.keys(files).sort()).toEqual([
      "app.css",
      "app.js",
      "dashboard.css",
      "dashboard.html",
      "dashboard.js",
      "favicon.svg",
      "index.html",
    ])
    for (const [name, text] of Object.entries(files)) expect(text, `web/dist/${name}`).toBe(committed(name))
  })

  it("loads at most 100 KB of compressed JS and CSS per page", () => {
    for (const page of ["app", "dashboard"]) {
      const size = [`${page}.js`, `${page}.css`].reduce(
        (total, name) => total + gzipSync(committed(name)).length,
        0,
      )
      console.log(`web: ${page}: first load ${size} bytes of gzipped JS + CSS`)
      expect(size).toBeLessThanOrEqual(100_000)
    }
  })

  it("loads nothing from another origin", () => {
    for (const name of ["index.html", "app.js", "app.css"])
      expect(committed(name)).not.toMatch(/https?:\/\/(?!www\.w3\.org)/)
  })
})
