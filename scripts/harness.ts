import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { AppConfig } from "../src/config.ts"
import { appLayer } from "../src/layers.ts"
import { percentile as nearestRank } from "../src/telemetry/percentiles.ts"

/**
 * The headers that make a request `org`'s. On a gateway in `AUTH_MODE=keys` (the default) that is a
 * key: `DAC_API_KEY` when given (the key's own org, whatever `org` says), else one issued for `org`
 * through the admin API when `ADMIN_API_KEY` is known. Without either, `x-org-id` (a gateway in
 * `AUTH_MODE=header`). `x-org-id` is sent along anyway: a keys-mode gateway ignores it.
 */
const authFor = (baseUrl: string, adminKey: string | undefined) => {
  const issued = new Map<string, Promise<Record<string, string>>>()
  return (org: string): Promise<Record<string, string>> => {
    const apiKey = process.env.DAC_API_KEY
    if (apiKey) return Promise.resolve({ authorization: `Bearer ${apiKey}`, "x-org-id": org })
    if (adminKey === undefined) return Promise.resolve({ "x-org-id": org })
    let headers = issued.get(org)
    if (headers === undefined) {
      headers = fetch(`${baseUrl}/admin/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({ org_id: org, name: "runbook" }),
      }).then(async (response) => {
        if (response.status !== 201) throw new Error(`could not issue a key for ${org}: ${response.status}`)
        const { key } = (await response.json()) as { key: string }
        return { authorization: `Bearer ${key}`, "x-org-id": org }
      })
      issued.set(org, headers)
    }
    return headers
  }
}

/** The target of a runbook script: `--url` (or BASE_URL), else a gateway of its own on the mock provider. */
export const gatewayFor = async (env: Record<string, string> = {}) => {
  const url = argValue("--url") ?? process.env.BASE_URL
  if (url !== undefined) {
    const baseUrl = url.replace(/\/+$/, "")
    return { baseUrl, auth: authFor(baseUrl, process.env.ADMIN_API_KEY || undefined), close: async () => {} }
  }
  // Its own gateway runs in the default AUTH_MODE=keys; the scripts' keys come from its admin API.
  const adminKey = `runbook-${crypto.randomUUID()}`
  const dataDir = mkdtempSync(join(tmpdir(), "dac-script-"))
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      appLayer(
        AppConfig.fromRecord({
          PORT: "0",
          HOST: "127.0.0.1",
          LOG_LEVEL: "Error",
          DATA_DIR: dataDir,
          ADMIN_API_KEY: adminKey,
          ...env,
        }),
      ),
      scope,
    ),
  )
  const address = Context.get(
    context as Context.Context<HttpServer.HttpServer>,
    HttpServer.HttpServer,
  ).address
  if (!("port" in address)) throw new Error("expected a TCP address")
  const baseUrl = `http://127.0.0.1:${address.port}`
  return {
    baseUrl,
    auth: authFor(baseUrl, adminKey),
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
