import { createHash, timingSafeEqual } from "node:crypto"
import { Redacted } from "effect"

const digest = (text: string) => createHash("sha256").update(text).digest()

/**
 * Whether `presented` is the configured secret, in constant time: both are hashed first, so the
 * comparison is of equal-length digests and its duration says nothing about the secret's length
 * or its first differing character.
 */
export const sameSecret = (presented: string | undefined, expected: Redacted.Redacted<string>): boolean =>
  presented !== undefined && timingSafeEqual(digest(presented), digest(Redacted.value(expected)))
