import { Effect, Layer, Option } from "effect"
import { HttpServerRequest } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import { AppConfig } from "../config.ts"
import { sameSecret } from "../engine/secret-compare.ts"
import { NotFoundError, UnauthorizedError } from "./errors.ts"
import { presentedKey } from "./org.ts"

/**
 * `/admin` answers only `Authorization: Bearer <ADMIN_API_KEY>` (compared in constant time);
 * without ADMIN_API_KEY configured every admin route is a 404, as if it did not exist.
 */
export class AdminAuth extends HttpApiMiddleware.Service<AdminAuth>()("dac/http/AdminAuth", {
  error: [NotFoundError, UnauthorizedError],
}) {}

export const AdminAuthLive = Layer.effect(
  AdminAuth,
  Effect.gen(function* () {
    const { adminApiKey } = yield* AppConfig
    return AdminAuth.of(
      Effect.fnUntraced(function* (httpEffect) {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (Option.isNone(adminApiKey)) {
          return yield* new NotFoundError({
            error: {
              code: "not_found",
              message: `no route for ${request.method} ${request.url.slice(0, 200)}`,
            },
          })
        }
        if (!sameSecret(presentedKey(request.headers), adminApiKey.value)) {
          return yield* new UnauthorizedError({
            error: { code: "invalid_api_key", message: "send Authorization: Bearer <ADMIN_API_KEY>" },
          })
        }
        return yield* httpEffect
      }),
    )
  }),
)
