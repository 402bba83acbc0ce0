/**
 * Builds the web app into web/dist (committed): `npm run build:web`. The output depends only on
 * the sources and the pinned esbuild, so `test/web/build.test.ts` rebuilds it and compares.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { type BuildOptions, build } from "esbuild"

const here = new URL("./", import.meta.url)

export const buildOptions: BuildOptions = {
  entryPoints: {
    app: new URL("src/app.ts", here).pathname,
    style: new URL("src/style.css", here).pathname,
    dashboard: new URL("src/dashboard.ts", here).pathname,
  },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  legalComments: "none",
  charset: "utf8",
  write: false,
  outdir: new URL("dist", here).pathname,
  absWorkingDir: new URL("..", here).pathname,
  logLevel: "warning",
}

/** The built files: name → contents. */
export const buildWeb = async (): Promise<Record<string, string>> => {
  const result = await build(buildOptions)
  const files: Record<string, string> = {
    "index.html": readFileSync(new URL("index.html", here), "utf8"),
    "favicon.svg": readFileSync(new URL("favicon.svg", here), "utf8"),
    "dashboard.html": readFileSync(new URL("dashboard.html", here), "utf8"),
  }
  for (const file of result.outputFiles ?? []) {
    const base = file.path.slice(file.path.lastIndexOf("/") + 1)
    files[base === "style.css" ? "app.css" : base] = file.text
  }
  return files
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = await buildWeb()
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(new URL(`dist/${name}`, here), text)
    console.log(`web/dist/${name}: ${Buffer.byteLength(text)} bytes`)
  }
}
