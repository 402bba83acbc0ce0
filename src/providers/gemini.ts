import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import type { ProviderError } from "../domain/provider-errors.ts"
import type { Usage } from "../domain/thread.ts"
import { parseJson, sseOrJson, unparseable, usageOf } from "./decode.ts"
import { type MakeDecoder, makeHttpAdapter } from "./http.ts"
import { errorFromStream, truncated } from "./http-errors.ts"
import { finish, type ProviderRequest, textDelta } from "./provider.ts"

/**
 * Gemini (`POST {base}/models/{model}:streamGenerateContent?alt=sse`, key in `x-goog-api-key`).
 * Every SSE event is a whole GenerateContentResponse; usage is cumulative and rides on each
 * chunk, the finish reason on the last candidate chunk, and there is no `[DONE]`. A failure after
 * the 200 arrives as a chunk holding only `error`.
 */

export const generateContentPath = (model: string, stream = true) =>
  `/models/${encodeURIComponent(model.replace(/^models\//, ""))}:${stream ? "streamGenerateContent?alt=sse" : "generateContent"}`

export const generateContentBody = (request: ProviderRequest) => {
  const system = request.messages.filter((m) => m.role === "system").map((m) => ({ text: m.content }))
  const generationConfig = {
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.maxTokens === undefined ? {} : { maxOutputTokens: request.maxTokens }),
    ...(request.topP === undefined ? {} : { topP: request.topP }),
    ...(request.stop === undefined ? {} : { stopSequences: request.stop }),
  }
  return {
    contents: request.messages
      .filter((m) => m.role !== "system")
      .map((m) => ({ role: m.role === "assistant" ? "model" : "user", parts: [{ text: m.content }] })),
    ...(system.length === 0 ? {} : { systemInstruction: { parts: system } }),
    ...(Object.keys(generationConfig).length === 0 ? {} : { generationConfig }),
  }
}

/** Gemini's finish reasons in the OpenAI vocabulary the rest of DAC speaks. */
export const finishReasonOf = (reason: string): string => {
  switch (reason) {
    case "STOP":
      return "stop"
    case "MAX_TOKENS":
      return "length"
    case "SAFETY":
    case "RECITATION":
    case "BLOCKLIST":
    case "PROHIBITED_CONTENT":
    case "SPII":
    case "IMAGE_SAFETY":
      return "content_filter"
    default:
      return reason.toLowerCase()
  }
}

/** The fields of a GenerateContentResponse that DAC reads. */
interface GenerateContentResponse {
  readonly candidates?: ReadonlyArray<{
    readonly content?: {
      readonly parts?: ReadonlyArray<{
        readonly text?: unknown
        readonly thought?: unknown
        readonly functionCall?: unknown
      }>
    }
    readonly finishReason?: unknown
  }>
  readonly usageMetadata?: {
    readonly promptTokenCount?: unknown
    readonly candidatesTokenCount?: unknown
    readonly thoughtsTokenCount?: unknown
  }
  readonly promptFeedback?: { readonly blockReason?: unknown }
  readonly error?: unknown
}

export const generateContentDecoder = (provider: ProviderName, secret: string): MakeDecoder =>
  sseOrJson(provider, (sink) => {
    let finishReason: string | undefined
    let usage: Usage | null = null
    // Gemini says STOP after a function call; OpenAI's vocabulary (DAC's) says tool_calls.
    let calledFunction = false

    /** Takes in one response, handing its text to `emit`; returns the error it carried, if any. */
    const read = (value: unknown, emit: (text: string) => void): ProviderError | undefined => {
      if (!Predicate.isObject(value)) return unparseable(provider, value)
      const chunk = value as GenerateContentResponse
      if (chunk.error !== undefined) return errorFromStream(provider, chunk.error, secret)
      const counts = chunk.usageMetadata
      if (counts) {
        // Thinking tokens are billed as output, as OpenAI counts reasoning inside completion_tokens.
        const thoughts = typeof counts.thoughtsTokenCount === "number" ? counts.thoughtsTokenCount : 0
        const candidates = typeof counts.candidatesTokenCount === "number" ? counts.candidatesTokenCount : 0
        usage = usageOf(counts.promptTokenCount, candidates + thoughts)
      }
      const candidate = chunk.candidates?.[0]
      for (const part of candidate?.content?.parts ?? []) {
        if (typeof part.text === "string" && part.text !== "" && part.thought !== true) emit(part.text)
        if (part.functionCall !== undefined) calledFunction = true
      }
      if (typeof candidate?.finishReason === "string") finishReason = candidate.finishReason
      if (typeof chunk.promptFeedback?.blockReason === "string") finishReason ??= "SAFETY"
      return undefined
    }

    const emitText = (text: string) => sink.emit(textDelta(text))
    const complete = () => {
      if (finishReason === undefined) return sink.fail(truncated(provider, "a finishReason"))
      const reason = finishReasonOf(finishReason)
      sink.emit(finish(calledFunction && reason === "stop" ? "tool_calls" : reason, usage))
    }

    return {
      event: (_event, data) => {
        const parsed = parseJson(data)
        const error = parsed === undefined ? unparseable(provider, data) : read(parsed, emitText)
        if (error !== undefined) sink.fail(error)
      },
      end: complete,
      json: (value) => {
        // generateContent answers one object; streamGenerateContent without alt=sse, an array of them.
        const texts: Array<string> = []
        for (const chunk of Array.isArray(value) ? value : [value]) {
          const error = read(chunk, (text) => texts.push(text))
          if (error !== undefined) return sink.fail(error)
        }
        if (texts.length > 0) emitText(texts.join(""))
        complete()
      },
    }
  })

export const makeGeminiAdapter = makeHttpAdapter({
  span: "Gemini",
  headers: (key) => ({ "x-goog-api-key": key }),
  request: (request) => ({
    path: generateContentPath(request.model, request.stream !== false),
    body: generateContentBody(request),
  }),
  decoder: generateContentDecoder,
})
