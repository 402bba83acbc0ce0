import type { Effect, Scope } from "effect"
import type { ProviderName, ProviderSettings, UpstreamTimeouts } from "../config.ts"
import { makeAnthropicAdapter } from "./anthropic.ts"
import { makeGeminiAdapter } from "./gemini.ts"
import { makeOpenAiCompatibleAdapter } from "./openai-compatible.ts"
import type { ProviderAdapter } from "./provider.ts"

/**
 * Builds the adapter of a provider reached over HTTP, for a provider that has an API key.
 * The scope owns its pooled connections: closing it closes them.
 */
export type RemoteAdapterFactory = (
  settings: ProviderSettings,
  timeouts: UpstreamTimeouts,
) => Effect.Effect<ProviderAdapter, never, Scope.Scope>

/** The wire protocol behind each remote provider: one adapter per protocol, bound to each provider's settings. */
export const remoteAdapters: Partial<Record<ProviderName, RemoteAdapterFactory>> = {
  openai: makeOpenAiCompatibleAdapter,
  perplexity: makeOpenAiCompatibleAdapter,
  openrouter: makeOpenAiCompatibleAdapter,
  anthropic: makeAnthropicAdapter,
  gemini: makeGeminiAdapter,
}
