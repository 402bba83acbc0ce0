import { Context, Effect, Layer, Schema } from "effect"
import { HttpServerRequest } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import { OrgId } from "../domain/ids.ts"
import { BadRequestError } from "./errors.ts"

/** The tenant of the current request, from `x-org-id`. */
export class CurrentOrg extends Context.Service<CurrentOrg, OrgId>()("dac/http/CurrentOrg") {}

export class OrgScope extends HttpApiMiddleware.Service<OrgScope, { provides: CurrentOrg }>()(
  "dac/http/OrgScope",
  {
    error: BadRequestError,
  },
) {}

const isOrgId = Schema.is(OrgId)

export const OrgScopeLive = Layer.succeed(
  OrgScope,
  OrgScope.of(
    Effect.fnUntraced(function* (httpEffect) {
      const request = yield* HttpServerRequest.HttpServerRequest
      const org = request.headers["x-org-id"]
      if (org === undefined || org === "") {
        return yield* new BadRequestError({
          error: { code: "missing_org_id", message: "the x-org-id header is required" },
        })
      }
      if (!isOrgId(org)) {
        return yield* new BadRequestError({
          error: {
            code: "invalid_org_id",
            message: "x-org-id must be 1-128 characters of letters, digits and . _ : @ -",
          },
        })
      }
      return yield* Effect.provideService(httpEffect, CurrentOrg, org)
    }),
  ),
)
