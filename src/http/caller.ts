import { Effect } from "effect"
import type { OrgId } from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"
import { CurrentOrg } from "./org.ts"

/**
 * A caller known only by its org (no key, so no limits): what every request is until the API-key
 * middleware provides the authenticated `Caller`.
 */
export const callerOf = (org: OrgId): Caller => ({ org, keyId: null, limits: {} })

/**
 * The current request's caller, for the `/api` handlers. The one place to swap for the
 * authenticated caller (the key middleware's service) when API keys land.
 */
export const currentCaller: Effect.Effect<Caller, never, CurrentOrg> = Effect.gen(function* () {
  return callerOf(yield* CurrentOrg)
})
