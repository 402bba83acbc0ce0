import { Effect, Option } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { AppConfig } from "../config.ts"
import { sameSecret } from "../engine/secret-compare.ts"
import { presentedKey } from "./org.ts"

/** What OPS_TOKEN guards besides `/ready`'s details (which its handler withholds itself). */
const guardedPaths = new Set(["/metrics", "/docs", "/ops/series"])

const pathOf = (url: string) => {
  const end = url.search(/[?#]/)
  return (end < 0 ? url : url.slice(0, end)).replace(/\/+$/, "")
}

/** Whether the request carries OPS_TOKEN, or none is configured (everything open). */
export const hasOpsAccess = Effect.gen(function* () {
  const { opsToken } = yield* AppConfig
  if (Option.isNone(opsToken)) return true
  const request = yield* HttpServerRequest.HttpServerRequest
  return sameSecret(presentedKey(request.headers), opsToken.value)
})

/** With OPS_TOKEN set, `/metrics`, `/docs` and `/ops/series` answer 401 without `Authorization: Bearer <OPS_TOKEN>`. */
export const opsGuard = HttpRouter.middleware(
  (app) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (guardedPaths.has(pathOf(request.url)) && !(yield* hasOpsAccess)) {
        return HttpServerResponse.jsonUnsafe(
          { error: { code: "invalid_ops_token", message: "send Authorization: Bearer <OPS_TOKEN>" } },
          { status: 401 },
        )
      }
      return yield* app
    }),
  { global: true },
)
