import { readFileSync } from "node:fs"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { AppConfig } from "../config.ts"
import { mockModels } from "../providers/mock.ts"
import { Providers } from "../providers/providers.ts"

/** The built web app (`npm run build:web` writes it; the files are committed). */
export const webDist = new URL("../../web/dist/", import.meta.url)

const assets = [
  { path: "/", file: "index.html", type: "text/html; charset=utf-8" },
  { path: "/assets/app.js", file: "app.js", type: "text/javascript; charset=utf-8" },
  { path: "/assets/app.css", file: "app.css", type: "text/css; charset=utf-8" },
  { path: "/favicon.svg", file: "favicon.svg", type: "image/svg+xml" },
  { path: "/dashboard", file: "dashboard.html", type: "text/html; charset=utf-8" },
  { path: "/assets/dashboard.js", file: "dashboard.js", type: "text/javascript; charset=utf-8" },
  { path: "/assets/dashboard.css", file: "dashboard.css", type: "text/css; charset=utf-8" },
  // Browsers ask for it whatever the page names: the same icon, rather than a 404 in the console.
  { path: "/favicon.ico", file: "favicon.svg", type: "image/svg+xml" },
] as const

/** The page loads only its own files and talks only to this origin. */
const securityHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
}

const readAsset = (file: string): string | undefined => {
  try {
    return readFileSync(new URL(file, webDist), "utf8")
  } catch {
    return undefined
  }
}

/**
 * `GET /` (the chat page) and its script and style, read once at start; `GET /web/config`: what
 * the page needs before signing in (the auth mode, the configured providers and known models).
 */
export const WebRoutes = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const providers = yield* Providers
    const suggested = new Map<string, Set<string>>()
    suggested.set("mock", new Set(Object.values(mockModels)))
    for (const target of config.modelAliases.values()) {
      const models = suggested.get(target.provider) ?? new Set<string>()
      models.add(target.model)
      suggested.set(target.provider, models)
    }
    const webConfig = {
      auth_mode: config.authMode,
      providers: providers.status
        .filter((status) => status.configured)
        .map((status) => ({ name: status.name, models: [...(suggested.get(status.name) ?? [])] })),
    }
    const routes = assets.map(({ path, file, type }) => {
      const body = readAsset(file)
      return HttpRouter.add(
        "GET",
        path,
        Effect.succeed(
          body === undefined
            ? HttpServerResponse.jsonUnsafe(
                {
                  error: {
                    code: "web_not_built",
                    message: "the web app is not built: run npm run build:web",
                  },
                },
                { status: 503 },
              )
            : HttpServerResponse.text(body, { contentType: type, headers: securityHeaders }),
        ),
      )
    })
    const [first, ...rest] = routes
    return Layer.mergeAll(
      first!,
      ...rest,
      HttpRouter.add(
        "GET",
        "/web/config",
        Effect.succeed(
          HttpServerResponse.jsonUnsafe(webConfig, { headers: { "cache-control": "no-store" } }),
        ),
      ),
    )
  }),
)
