import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { ApiKeys, issuedKeyAnswer } from "../engine/api-keys.ts"
import { Api } from "./api.ts"
import { toApiError } from "./errors.ts"

export const AdminHandlers = HttpApiBuilder.group(
  Api,
  "admin",
  Effect.fn(function* (handlers) {
    const keys = yield* ApiKeys
    return handlers.handleAll({
      createKey: Effect.fn("http.createKey")(function* ({ payload }) {
        const issued = yield* keys
          .issue({ org: payload.org_id, name: payload.name ?? null, limits: payload.limits ?? {} })
          .pipe(Effect.mapError(toApiError))
        return issuedKeyAnswer(issued)
      }),
      listKeys: Effect.fn("http.listKeys")(function* ({ query }) {
        return { keys: yield* keys.list(query.org_id).pipe(Effect.mapError(toApiError)) }
      }),
      updateKey: Effect.fn("http.updateKey")(function* ({ params, payload }) {
        return yield* keys
          .update(params.key_id, { name: payload.name, limits: payload.limits })
          .pipe(Effect.mapError(toApiError))
      }),
      revokeKey: Effect.fn("http.revokeKey")(function* ({ params }) {
        return yield* keys.revoke(params.key_id).pipe(Effect.mapError(toApiError))
      }),
    })
  }),
)
