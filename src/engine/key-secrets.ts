import { hash, randomBytes } from "node:crypto"
import { displayPrefixChars, keyPrefix } from "../domain/keys.ts"

/** A new secret: `dac_` and 256 random bits, base64url (43 characters). */
export const newSecret = (): string => keyPrefix + randomBytes(32).toString("base64url")

/**
 * What the store keeps of a secret: its SHA-256, hex. A fast hash is enough because the secret is
 * 256 random bits (nothing to brute-force, unlike a password); it is also what every request pays.
 */
export const hashSecret = (secret: string): string => hash("sha256", secret, "hex")

/** The part of a secret shown in lists. */
export const displayPrefix = (secret: string): string => secret.slice(0, displayPrefixChars)

/** The longest text worth hashing as a key (a secret is 47 characters; a header may be 16 KB). */
export const maxSecretChars = 256
