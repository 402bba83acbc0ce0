import type { ProviderName } from "../config.ts"
import type { ProviderOptions } from "./provider.ts"

/**
 * What each provider's wire protocol can carry of a request's options, checked before anything is
 * queued or sent: a request that asks for more is refused (400) naming the provider, never answered
 * as if the option had not been sent (prose for a JSON request would be a silent wrong answer).
 */

/** Providers whose API has a JSON output mode DAC can ask for. */
const jsonOutput: ReadonlySet<ProviderName> = new Set([
  "openai",
  "openrouter",
  "gemini",
  "perplexity",
  "anthropic",
])

/**
 * Providers that take `json_schema` only: Perplexity has no bare JSON mode; Anthropic's structured
 * outputs need a schema, and no schema it accepts means "any JSON object" (anthropic-schema.ts).
 */
const jsonSchemaOnly: ReadonlySet<ProviderName> = new Set(["perplexity", "anthropic"])

/** What of `options` the provider cannot do, in words for the 400; undefined when it can do all. */
export const unsupportedOption = (provider: ProviderName, options: ProviderOptions): string | undefined => {
  const format = options.responseFormat
  if (format !== undefined) {
    if (!jsonOutput.has(provider)) {
      return `response_format ${format.type} is not supported by provider "${provider}" (its API has no JSON output mode DAC can ask for); supported by openai, openrouter and gemini, and by anthropic and perplexity with a json_schema`
    }
    if (format.type === "json_object" && jsonSchemaOnly.has(provider)) {
      return `response_format json_object is not supported by provider "${provider}" (it has no JSON mode without a schema); send a json_schema`
    }
    if (format.type === "json_schema" && format.schema === undefined && jsonSchemaOnly.has(provider)) {
      return `response_format json_schema needs json_schema.schema on provider "${provider}"`
    }
  }
  if (options.tools !== undefined && options.tools.length > 0 && provider === "perplexity") {
    return `tools are not supported by provider "perplexity" (its API has no function calling)`
  }
  return undefined
}
