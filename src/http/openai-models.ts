import { HttpServerResponse } from "effect/http"
import type { AppConfigShape } from "../config.ts"
import { mockModels } from "../providers/mock.ts"
import type { ProviderStatus } from "../providers/providers.ts"
import { openAiError } from "./openai-errors.ts"

/**
 * `GET /v1/models` and `GET /v1/models/{id}` in OpenAI's list shape: each configured provider's
 * `<P>_MODELS` (as `provider/model`, the name `/v1/chat/completions` takes), the mock's models, and
 * the `MODEL_ALIASES` (owned by the provider they route to). Built once at start: the list only
 * changes with the configuration.
 */

interface ModelEntry {
  readonly id: string
  readonly object: "model"
  readonly created: number
  readonly owned_by: string
}

export const modelList = (config: AppConfigShape, status: ReadonlyArray<ProviderStatus>) => {
  const entries = new Map<string, ModelEntry>()
  const add = (id: string, owner: string) => {
    if (!entries.has(id)) entries.set(id, { id, object: "model", created: 0, owned_by: owner })
  }
  for (const { name, configured } of status) {
    if (!configured) continue
    const models = name === "mock" ? Object.values(mockModels) : (config.providers[name].models ?? [])
    for (const model of models) add(`${name}/${model}`, name)
  }
  for (const [alias, target] of config.modelAliases) add(alias, target.provider)
  return entries
}

export const listModels = (entries: ReadonlyMap<string, ModelEntry>) => {
  const body = { object: "list", data: [...entries.values()] }
  return () => HttpServerResponse.jsonUnsafe(body)
}

/** `id` is what follows `/v1/models/` (it may hold a slash: `mock/faststream-ttft`). */
export const retrieveModel = (entries: ReadonlyMap<string, ModelEntry>, id: string) => {
  const entry = entries.get(id)
  return entry === undefined
    ? openAiError(404, "model_not_found", `The model '${id}' does not exist`, {}, "model")
    : HttpServerResponse.jsonUnsafe(entry)
}
