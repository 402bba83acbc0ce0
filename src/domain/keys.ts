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

/** A key as the admin API shows it: its id, prefix and metadata, never the secret or its hash. */
export const ApiKey = Schema.Struct({
  key_id: KeyId,
  org_id: Schema.String,
  name: Schema.NullOr(Schema.String),
  /** The secret's first characters, to tell keys apart in a list (not enough to guess the rest). */
  prefix: Schema.String,
  created_at: Schema.String,
  last_used_at: Schema.NullOr(Schema.String),
  revoked_at: Schema.NullOr(Schema.String),
  limits: KeyLimits,
})
export type ApiKey = typeof ApiKey.Type

/** Every secret starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const keyPrefix = "dac_"

/** The characters of a secret shown as its `prefix`: `dac_` and 8 of its random part. */
export const displayPrefixChars = keyPrefix.length + 8
