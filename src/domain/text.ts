import { Schema } from "effect"

/**
 * Text the gateway stores, logs or keys on must be text PostgreSQL can hold: a `text` column
 * refuses U+0000 (and `jsonb` its `\u0000` escape), and a lone UTF-16 surrogate has no UTF-8 form,
 * so the driver would silently write U+FFFD instead. Such input is refused at the edge with a 400
 * naming its field, never altered: the one place this is decided.
 */

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

export const isStorableText = (text: string): boolean => !text.includes("\u0000") && !loneSurrogate.test(text)

/** The schema check behind every stored, logged or keyed string field. */
export const storableText = Schema.makeFilter<string>(
  (text) =>
    isStorableText(text) || "must not contain U+0000 or unpaired UTF-16 surrogates (not storable text)",
  { identifier: "StorableText" },
)

/** A string PostgreSQL can store. */
export const StorableString = Schema.String.check(storableText)

/** Model names: letters, digits and `. _ - : / @ +`, up to 256 characters. */
export const maxModelChars = 256
// `*`, not `+`: emptiness is each field's own check, with its own message.
const safeName = /^[A-Za-z0-9._\-:/@+]*$/
const safeNameMessage = "must be letters, digits and . _ - : / @ + only"

/**
 * The bounds of a model name as the providers spell them (`gpt-4o-mini`, `claude-sonnet-4-5`,
 * `meta-llama/llama-3-8b:free`, `models/gemini-2.0-flash`): it is stored with each message,
 * logged, and part of the coalescing key.
 */
export const modelNameChecks = [
  Schema.isMaxLength(maxModelChars, { message: `must be at most ${maxModelChars} characters` }),
  Schema.isPattern(safeName, { message: safeNameMessage }),
] as const

/** Provider names are short identifiers (`openai`, `mock`): the same set, up to 64 characters. */
export const providerNameChecks = [
  Schema.isMaxLength(64, { message: "must be at most 64 characters" }),
  Schema.isPattern(safeName, { message: safeNameMessage }),
] as const
