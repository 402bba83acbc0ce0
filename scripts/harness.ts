import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { AppConfig } from "../src/config.ts"
import { appLayer } from "../src/layers.ts"
import { percentile as nearestRank } from "../src/telemetry/percentiles.ts"

/** The target of a runbook script: `--url` (or BASE_URL), else a gateway of its own on the mock provider. */
export const gatewayFor = async (env: Record<string, string> = {}) => {
  const url = argValue("--url") ?? process.env.BASE_URL
  if (url !== undefined) return { baseUrl: url.replace(/\/+$/, ""), close: async () => {} }
  const dataDir = mkdtempSync(join(tmpdir(), "dac-script-"))
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      appLayer(
        AppConfig.fromRecord({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "Error", DATA_DIR: dataDir, ...env }),
      ),
      scope,
    ),
  )
  const address = Context.get(
    context as Context.Context<HttpServer.HttpServer>,
    HttpServer.HttpServer,
  ).address
  if (!("port" in address)) throw new Error("expected a TCP address")
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export const argValue = (name: string): string | undefined => {
  const index = process.argv.indexOf(name)
  return index >= 0 ? process.argv[index + 1] : undefined
}

/** The gateway's own nearest-rank percentile over unsorted values; NaN (prints as such) for none. */
export const percentile = (values: ReadonlyArray<number>, p: number): number =>
  nearestRank(
    [...values].sort((a, b) => a - b),
    p,
  ) ?? Number.NaN

export const table = (rows: ReadonlyArray<Record<string, string | number>>) => {
  const columns = Object.keys(rows[0] ?? {})
  const cell = (v: string | number) =>
    typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : v
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]!).length)))
  const line = (values: ReadonlyArray<string>) => values.map((v, i) => v.padStart(widths[i]!)).join("  ")
  return [
    line(columns),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map((r) => line(columns.map((c) => cell(r[c]!)))),
  ].join("\n")
}
