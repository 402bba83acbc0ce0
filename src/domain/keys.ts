import { Schema } from "effect"
import type { OrgId } from "./ids.ts"

/** An API key's id (public: it names the key in the admin API and in logs, never the secret). */
export const KeyId = Schema.String.check(Schema.isUUID()).pipe(Schema.brand("KeyId"))
export type KeyId = typeof KeyId.Type

const positiveLimit = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000_000 }))

/** A key's optional limits; an absent one is no limit. */
export const KeyLimits = Schema.Struct({
  /** Requests started per rolling minute. */
  requests_per_minute: Schema.optional(positiveLimit),
  /** Streams and waits in flight at once. */
  concurrent_requests: Schema.optional(positiveLimit),
  /** Input + output tokens per UTC day, as the provider reports them. */
  tokens_per_day: Schema.optional(positiveLimit),
})
export type KeyLimits = typeof KeyLimits.Type

/**
 * Who is calling: the org (from the key alone, or from `x-org-id` in `AUTH_MODE=header`) and, with
 * a key, which one and its limits. Every `/api` and `/v1` request has one.
 */
export interface Caller {
  readonly org: OrgId
  /** null in `AUTH_MODE=header` (no key). */
  readonly keyId: KeyId | null
  readonly limits: KeyLimits
}
