import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { inject } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { appLayer } from "../../src/layers.ts"

export interface RunningGateway {
  readonly baseUrl: string
  /** The built services, for tests that reach past HTTP (repositories, request log). */
  readonly context: Context.Context<never>
  readonly close: () => Promise<void>
}

/**
 * The whole gateway in this process on an ephemeral loopback port, on the suite's database.
 * `env` overrides configuration variables, as the environment would.
 */
export const startGateway = async (env: Record<string, string> = {}): Promise<RunningGateway> => {
  const config = AppConfig.fromRecord({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "Warn",
    // The suite's older tests pick their org with x-org-id; keys-mode tests pass AUTH_MODE=keys.
    AUTH_MODE: "header",
    DATABASE_URL: inject("databaseUrl"),
    DATABASE_POOL_SIZE: inject("databasePoolSize"),
    ...env,
  })
  const scope = Effect.runSync(Scope.make())
  const context = (await Effect.runPromise(
    Layer.buildWithScope(appLayer(config), scope),
  )) as Context.Context<never>
  const server = Context.get(context as Context.Context<HttpServer.HttpServer>, HttpServer.HttpServer)
  const address = server.address
  if (!("port" in address)) throw new Error("expected a TCP address")
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    context,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

/** `fetch` with the org header and a JSON body. */
export const api = (baseUrl: string, org: string | undefined) => {
  const request = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(org === undefined ? {} : { "x-org-id": org }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    })
    const text = await response.text()
    let json: unknown
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    // biome-ignore lint/suspicious/noExplicitAny: each test asserts the shape of the body it reads
    return { status: response.status, headers: response.headers, text, json: json as any }
  }
  return {
    org,
    get: (path: string, headers?: Record<string, string>) => request("GET", path, undefined, headers),
    post: (path: string, body?: unknown, headers?: Record<string, string>) =>
      request("POST", path, body, headers),
  }
}
