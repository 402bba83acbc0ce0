/**
 * Which of OpenAI's Chat Completions parameters `/v1/chat/completions` must refuse: those that
 * change the answer and that DAC does not pass on to providers.
 */

const isEmpty = (value: unknown) =>
  (Array.isArray(value) && value.length === 0) ||
  (typeof value === "object" && value !== null && Object.keys(value).length === 0)

/**
 * Parameters that change what the model answers and that DAC does not pass on to providers, each
 * with the values that mean "as if not sent" (what some clients send by default). Any other value
 * is refused with a 400 naming it: answering as if it had not been sent (no function call for a
 * request with `functions`) would be a silent wrong answer. `seed`, `user`, `metadata`, `store`
 * and `service_tier` are accepted and not passed on: they do not change what an answer is.
 * (`tools`, `tool_choice`, `parallel_tool_calls`, `response_format` and `n` are passed on:
 * openai-request.ts.)
 */
const notPassedOn: ReadonlyArray<readonly [name: string, isDefault: (value: unknown) => boolean]> = [
  ["functions", isEmpty],
  ["function_call", (v) => v === "none" || v === "auto"],
  ["presence_penalty", (v) => v === 0],
  ["frequency_penalty", (v) => v === 0],
  ["logit_bias", isEmpty],
  ["logprobs", (v) => v === false],
  ["top_logprobs", (v) => v === 0],
  ["modalities", (v) => Array.isArray(v) && v.every((m) => m === "text")],
  ["audio", () => false],
  ["prediction", () => false],
  ["reasoning_effort", () => false],
  ["web_search_options", () => false],
]

/** The first parameter of the request that DAC would have to drop to answer it (see `notPassedOn`). */
export const unsupportedParameter = (request: unknown) => {
  if (typeof request !== "object" || request === null) return undefined
  const fields = request as Record<string, unknown>
  for (const [name, isDefault] of notPassedOn) {
    const value = fields[name]
    if (value !== undefined && value !== null && !isDefault(value)) return name
  }
  return undefined
}
