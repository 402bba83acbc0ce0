import type { OrgId } from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"

/** A caller known only by its org (`AUTH_MODE=header`: no key, so no limits). */
export const headerCaller = (org: OrgId): Caller => ({ org, keyId: null, limits: {} })
