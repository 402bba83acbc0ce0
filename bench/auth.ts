/**
 * `npm run bench:auth`: the CPU cost per request of authenticating with an API key.
 * 1. In-process, `ApiKeys.authenticate` of a cached key (hash + map lookup), in µs per call.
 * 2. End to end: one gateway in AUTH_MODE=header and one in AUTH_MODE=keys (a cached key), the same
 *    cheap route (`GET /api/metrics/performance?last_n=1`, no store call) driven alternately in
 *    rounds; the process's CPU time per request (client included, equal on both sides), and the
 *    difference.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { Agent, fetch as undiciFetch } from "undici"
import { AppConfig } from "../src/config.ts"
import { ApiKeys } from "../src/engine/api-keys.ts"
import { appLayer } from "../src/layers.ts"

const requests = Number(process.env.BENCH_AUTH_REQUESTS ?? 20_000)
const rounds = 4
const concurrency = 16
const dirs: Array<string> = []

const start = async (env: Record<string, string>) => {
  const dataDir = mkdtempSync(join(tmpdir(), "dac-bench-auth-"))
  dirs.push(dataDir)
  const scope = Effect.runSync(Scope.make())
  const config = AppConfig.fromRecord({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "Error",
    DATA_DIR: dataDir,
    ...env,
  })
  const context = (await Effect.runPromise(
    Layer.buildWithScope(appLayer(config), scope),
  )) as Context.Context<never>
  const address = Context.get(
    context as Context.Context<HttpServer.HttpServer>,
    HttpServer.HttpServer,
  ).address
  if (!("port" in address)) throw new Error("expected a TCP address")
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    context,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

const header = await start({ AUTH_MODE: "header" })
const keys = await start({ AUTH_MODE: "keys", ADMIN_API_KEY: "bench-admin" })
const issued = await fetch(`${keys.baseUrl}/admin/keys`, {
  method: "POST",
  headers: { authorization: "Bearer bench-admin", "content-type": "application/json" },
  body: JSON.stringify({ org_id: "bench" }),
})
const { key } = (await issued.json()) as { key: string }

// 1. The lookup itself.
const apiKeys = Context.get(keys.context as Context.Context<ApiKeys>, ApiKeys)
await Effect.runPromise(apiKeys.authenticate(key))
const calls = 200_000
const lookupStart = process.cpuUsage()
for (let i = 0; i < calls; i++) Effect.runSync(apiKeys.authenticate(key).pipe(Effect.ignore))
const lookup = process.cpuUsage(lookupStart)
const lookupUs = (lookup.user + lookup.system) / calls

// 2. End to end.
const dispatcher = new Agent({ connections: concurrency })
const drive = async (baseUrl: string, headers: Record<string, string>, n: number) => {
  let next = 0
  const worker = async () => {
    while (next++ < n) {
      const response = await undiciFetch(`${baseUrl}/api/metrics/performance?last_n=1`, {
        headers,
        dispatcher,
      })
      if (response.status !== 200) throw new Error(`status ${response.status}`)
      await response.arrayBuffer()
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}
const cpuPerRequest = async (baseUrl: string, headers: Record<string, string>) => {
  const before = process.cpuUsage()
  await drive(baseUrl, headers, requests)
  const used = process.cpuUsage(before)
  return (used.user + used.system) / requests
}
const headerAuth = { "x-org-id": "bench" }
const keyAuth = { authorization: `Bearer ${key}` }
await drive(header.baseUrl, headerAuth, 2_000)
await drive(keys.baseUrl, keyAuth, 2_000)
const samples = { header: [] as Array<number>, keys: [] as Array<number> }
for (let round = 0; round < rounds; round++) {
  samples.header.push(await cpuPerRequest(header.baseUrl, headerAuth))
  samples.keys.push(await cpuPerRequest(keys.baseUrl, keyAuth))
}
const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const h = median(samples.header)
const k = median(samples.keys)
console.log(`ApiKeys.authenticate (cached key): ${lookupUs.toFixed(2)} µs CPU per call (${calls} calls)`)
console.log(
  `end to end, CPU µs per request (median of ${rounds} rounds of ${requests}, client included): header ${h.toFixed(1)}, keys ${k.toFixed(1)}, added by keys ${(k - h).toFixed(1)}`,
)
console.log(
  `rounds: header ${samples.header.map((v) => v.toFixed(1)).join(" ")}; keys ${samples.keys.map((v) => v.toFixed(1)).join(" ")}`,
)
await dispatcher.close()
await header.close()
await keys.close()
for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
process.exit(0)
