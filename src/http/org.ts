import { Context, Effect, Layer, Schema } from "effect"
import { HttpServerRequest } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import { AppConfig } from "../config.ts"
import { OrgId } from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"
import { ApiKeys } from "../engine/api-keys.ts"
import { headerCaller } from "./caller.ts"
import { BadRequestError, toApiError, UnauthorizedError, UnavailableError } from "./errors.ts"

/** The tenant of the current request: the key's org (or `x-org-id` in `AUTH_MODE=header`). */
export class CurrentOrg extends Context.Service<CurrentOrg, OrgId>()("dac/http/CurrentOrg") {}

/** Who is calling: the org, the key and its limits (`keyId` null in `AUTH_MODE=header`). */
export class CurrentCaller extends Context.Service<CurrentCaller, Caller>()("dac/http/CurrentCaller") {}

export class OrgScope extends HttpApiMiddleware.Service<OrgScope, { provides: CurrentOrg | CurrentCaller }>()(
  "dac/http/OrgScope",
  {
    error: [BadRequestError, UnauthorizedError, UnavailableError],
  },
) {}

const isOrgId = Schema.is(OrgId)

type Headers = Readonly<Record<string, string | undefined>>

/** The key a request presents: `Authorization: Bearer <key>`, else `x-api-key`. */
export const presentedKey = (headers: Headers): string | undefined => {
  const authorization = headers.authorization
  if (authorization !== undefined) {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1]
    if (bearer !== undefined) return bearer
  }
  const apiKey = headers["x-api-key"]?.trim()
  return apiKey === "" ? undefined : apiKey
}

/** `AUTH_MODE=header`: the org from `x-org-id`, as a trusted front end set it; no key, no limits. */
const callerFromHeader = (headers: Headers) => {
  const org = headers["x-org-id"]
  if (org === undefined || org === "") {
    return Effect.fail(
      new BadRequestError({ error: { code: "missing_org_id", message: "the x-org-id header is required" } }),
    )
  }
  if (!isOrgId(org)) {
    return Effect.fail(
      new BadRequestError({
        error: {
          code: "invalid_org_id",
          message: "x-org-id must be 1-128 characters of letters, digits and . _ : @ -",
        },
      }),
    )
  }
  return Effect.succeed(headerCaller(org))
}

export const OrgScopeLive = Layer.effect(
  OrgScope,
  Effect.gen(function* () {
    const { authMode } = yield* AppConfig
    const keys = yield* ApiKeys
    return OrgScope.of(
      Effect.fnUntraced(function* (httpEffect) {
        const request = yield* HttpServerRequest.HttpServerRequest
        // In keys mode `x-org-id` is ignored: the org is the key's alone.
        const caller =
          authMode === "header"
            ? yield* callerFromHeader(request.headers)
            : yield* keys
                .authenticate(presentedKey(request.headers))
                .pipe(Effect.mapError((error) => toApiError(error) as UnauthorizedError | UnavailableError))
        return yield* httpEffect.pipe(
          Effect.provideService(CurrentOrg, caller.org),
          Effect.provideService(CurrentCaller, caller),
        )
      }),
    )
  }),
)
