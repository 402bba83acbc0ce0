import { Context, Effect, Layer, Option } from "effect"
import { AppConfig, isProviderName, type ProviderName, providerNames } from "../config.ts"
import { ProviderNotConfigured, UnknownModel, UnknownProvider } from "../domain/errors.ts"
import { makeMockProvider } from "./mock.ts"
import type { ProviderAdapter } from "./provider.ts"
import { remoteAdapters } from "./remote.ts"

export interface ProviderStatus {
  readonly name: ProviderName
  readonly configured: boolean
}

/** The adapters of every provider, resolved by name and model at the start of a turn. */
export class Providers extends Context.Service<
  Providers,
  {
    readonly resolve: (
      provider: string,
      model: string,
    ) => Effect.Effect<ProviderAdapter, UnknownProvider | UnknownModel | ProviderNotConfigured>
    readonly status: ReadonlyArray<ProviderStatus>
  }
>()("dac/providers/Providers") {
  /**
   * Every provider answered by `adapter` (tests of what runs behind the providers: a scripted
   * upstream whose timing and replies the test decides).
   */
  static readonly layerScripted = (adapter: ProviderAdapter) =>
    Layer.succeed(
      Providers,
      Providers.of({
        resolve: (provider) =>
          isProviderName(provider)
            ? Effect.succeed(adapter)
            : Effect.fail(new UnknownProvider({ message: `unknown provider "${provider}"` })),
        status: providerNames.map((name) => ({ name, configured: true })),
      }),
    )

  static readonly layer = Layer.effect(
    Providers,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const adapters = new Map<ProviderName, ProviderAdapter>()
      adapters.set("mock", makeMockProvider(config.mock))
      for (const name of providerNames) {
        const factory = remoteAdapters[name]
        const settings = config.providers[name]
        if (factory && Option.isSome(settings.apiKey)) {
          adapters.set(name, yield* factory(settings, config.upstream))
        }
      }
      const status = providerNames.map((name) => ({ name, configured: adapters.has(name) }))
      const unconfigured = status.filter((s) => !s.configured).map((s) => s.name)
      yield* Effect.logInfo("providers", {
        configured: status.filter((s) => s.configured).map((s) => s.name),
        unconfigured,
      })

      const resolve = (provider: string, model: string) => {
        if (!isProviderName(provider)) {
          return Effect.fail(
            new UnknownProvider({
              message: `unknown provider "${provider}"; expected one of ${providerNames.join(", ")}`,
            }),
          )
        }
        const adapter = adapters.get(provider)
        if (adapter === undefined) {
          return Effect.fail(
            new ProviderNotConfigured({
              message: `provider "${provider}" is not configured: set ${provider.toUpperCase()}_API_KEY`,
            }),
          )
        }
        if (adapter.models !== undefined && !adapter.models.includes(model)) {
          return Effect.fail(
            new UnknownModel({
              message: `unknown model "${model}" for provider "${provider}"; expected one of ${adapter.models.join(", ")}`,
            }),
          )
        }
        return Effect.succeed(adapter)
      }

      return Providers.of({ resolve, status })
    }),
  )
}
