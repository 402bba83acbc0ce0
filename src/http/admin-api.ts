import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { OrgId } from "../domain/ids.ts"
import { ApiKey, KeyId, KeyLimits } from "../domain/keys.ts"
import { storableText } from "../domain/text.ts"
import { AdminAuth } from "./admin-auth.ts"
import { BadRequestError, NotFoundError, UnauthorizedError, UnavailableError } from "./errors.ts"

const KeyName = Schema.String.check(storableText, Schema.isMaxLength(200))

export const CreateKey = Schema.Struct({
  org_id: OrgId,
  name: Schema.optional(Schema.NullOr(KeyName)),
  limits: Schema.optional(KeyLimits),
})

/** The only answer that ever shows a key's secret (`key`). */
export const IssuedKey = Schema.Struct({
  key_id: KeyId,
  key: Schema.String,
  org_id: Schema.String,
  name: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  limits: KeyLimits,
})

export const KeyList = Schema.Struct({ keys: Schema.Array(ApiKey) })

export const ChangeKey = Schema.Struct({
  name: Schema.optional(Schema.NullOr(KeyName)),
  limits: Schema.optional(KeyLimits),
})

const authErrors = [UnauthorizedError, NotFoundError] as const

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("createKey", "/keys", {
      payload: CreateKey,
      success: IssuedKey.pipe(HttpApiSchema.status(201)),
      error: [BadRequestError, ...authErrors, UnavailableError],
    }),
    HttpApiEndpoint.get("listKeys", "/keys", {
      query: { org_id: Schema.optional(OrgId) },
      success: KeyList,
      error: [BadRequestError, ...authErrors, UnavailableError],
    }),
    HttpApiEndpoint.patch("updateKey", "/keys/:key_id", {
      params: { key_id: KeyId },
      payload: ChangeKey,
      success: ApiKey,
      error: [BadRequestError, ...authErrors, UnavailableError],
    }),
    // Revokes it: the key stops working at once on this gateway (within 1 s on others).
    HttpApiEndpoint.delete("revokeKey", "/keys/:key_id", {
      params: { key_id: KeyId },
      success: ApiKey,
      error: [BadRequestError, ...authErrors, UnavailableError],
    }),
  )
  .middleware(AdminAuth)
  .prefix("/admin")
  .annotateMerge(
    OpenApi.annotations({
      title: "Admin",
      description: "API keys: issue, list, change, revoke (Authorization: Bearer <ADMIN_API_KEY>)",
    }),
  ) {}
