import { randomUUID } from "node:crypto"
import { Predicate } from "effect"
import type { ProviderName } from "../config.ts"
import { type ContentPart, dataUrlOf, mediaTypeOfUrl, textOf } from "../domain/content.ts"
import { type ProviderError, StreamFailed } from "../domain/provider-errors.ts"
import type { Usage } from "../domain/thread.ts"
import { parseJson, sseOrJson, unparseable, usageOf } from "./decode.ts"
import { type MakeDecoder, makeHttpAdapter } from "./http.ts"
import { errorFromStream, truncated } from "./http-errors.ts"
import { type ChatMessage, finish, type ProviderRequest, textDelta, toolCallDelta } from "./provider.ts"

/**
 * Gemini (`POST {base}/models/{model}:streamGenerateContent?alt=sse`, key in `x-goog-api-key`).
 * Every SSE event is a whole GenerateContentResponse; usage is cumulative and rides on each
 * chunk, the finish reason on the last candidate chunk, and there is no `[DONE]`. A failure after
 * the 200 arrives as a chunk holding only `error`.
 */

export const generateContentPath = (model: string, stream = true) =>
  `/models/${encodeURIComponent(model.replace(/^models\//, ""))}:${stream ? "streamGenerateContent?alt=sse" : "generateContent"}`

/** A content part as a Gemini part: an image inline (a data: URL) or by URI. */
const partOf = (part: ContentPart) => {
  if (part.type === "text") return { text: part.text }
  const inline = dataUrlOf(part.url)
  return inline === undefined
    ? { fileData: { mimeType: mediaTypeOfUrl(part.url), fileUri: part.url } }
    : { inlineData: { mimeType: inline.mediaType, data: inline.data } }
}

const partsOf = (message: ChatMessage) =>
  typeof message.content === "string" ? [{ text: message.content }] : message.content.map(partOf)

const argsOf = (args: string): unknown => {
  try {
    const value: unknown = JSON.parse(args === "" ? "{}" : args)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : {}
  } catch {
    return {}
  }
}

/** `functionResponse.response` must be an object: a JSON object result as is, anything else wrapped. */
const responseOf = (content: string): unknown => {
  try {
    const value: unknown = JSON.parse(content)
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value
  } catch {
    // Plain text: wrapped below.
  }
  return { result: content }
}

/**
 * The conversation as Gemini's contents: tool calls become `functionCall` parts of a model turn
 * (each with the `thoughtSignature` it came with: Gemini 3 refuses a replayed call without it), and
 * the results of consecutive `tool` messages one user turn of `functionResponse` parts, each naming
 * its function (from the message, or from the call it answers).
 */
const contentsOf = (messages: ReadonlyArray<ChatMessage>) => {
  const names = new Map<string, string>()
  const contents: Array<{ role: "user" | "model"; parts: Array<unknown> }> = []
  for (const message of messages) {
    switch (message.role) {
      case "system":
        break
      case "tool": {
        const id = message.toolCallId
        const part = {
          functionResponse: {
            ...(id === undefined ? {} : { id }),
            name: message.name ?? (id === undefined ? undefined : names.get(id)) ?? "",
            response: responseOf(textOf(message.content)),
          },
        }
        const last = contents.at(-1)
        const previous = last?.parts[0] as { functionResponse?: unknown } | undefined
        if (last?.role === "user" && previous?.functionResponse !== undefined) last.parts.push(part)
        else contents.push({ role: "user", parts: [part] })
        break
      }
      case "assistant": {
        const calls = message.toolCalls ?? []
        const text =
          calls.length === 0 ? partsOf(message) : textOf(message.content) === "" ? [] : partsOf(message)
        for (const call of calls) names.set(call.id, call.name)
        contents.push({
          role: "model",
          parts: [
            ...text,
            ...calls.map((call) => ({
              functionCall: { id: call.id, name: call.name, args: argsOf(call.arguments) },
              ...(call.extra?.thoughtSignature === undefined
                ? {}
                : { thoughtSignature: call.extra.thoughtSignature }),
            })),
          ],
        })
        break
      }
      default:
        contents.push({ role: "user", parts: partsOf(message) })
    }
  }
  return contents
}

/** `tools` and `toolConfig` (Gemini has no switch for parallel calls: `parallelToolCalls` is not sent). */
const toolFields = (request: ProviderRequest) => {
  const fields: Record<string, unknown> = {}
  if (request.tools !== undefined && request.tools.length > 0) {
    fields.tools = [
      {
        functionDeclarations: request.tools.map((tool) => ({
          name: tool.name,
          ...(tool.description === undefined ? {} : { description: tool.description }),
          // The JSON Schema as the client wrote it (`parameters` takes only an OpenAPI subset).
          ...(tool.parameters === undefined ? {} : { parametersJsonSchema: tool.parameters }),
        })),
      },
    ]
  }
  const choice = request.toolChoice
  if (choice !== undefined) {
    fields.toolConfig = {
      functionCallingConfig:
        typeof choice === "string"
          ? { mode: { auto: "AUTO", none: "NONE", required: "ANY" }[choice] }
          : { mode: "ANY", allowedFunctionNames: [choice.name] },
    }
  }
  return fields
}

export const generateContentBody = (request: ProviderRequest) => {
  const system = request.messages.filter((m) => m.role === "system").map((m) => ({ text: textOf(m.content) }))
  const format = request.responseFormat
  const generationConfig = {
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.maxTokens === undefined ? {} : { maxOutputTokens: request.maxTokens }),
    ...(request.topP === undefined ? {} : { topP: request.topP }),
    ...(request.stop === undefined ? {} : { stopSequences: request.stop }),
    ...(format === undefined ? {} : { responseMimeType: "application/json" }),
    // The JSON Schema as sent (`responseSchema` takes only an OpenAPI subset: no additionalProperties).
    ...(format?.type === "json_schema" && format.schema !== undefined
      ? { responseJsonSchema: format.schema }
      : {}),
  }
  return {
    contents: contentsOf(request.messages),
    ...(system.length === 0 ? {} : { systemInstruction: { parts: system } }),
    ...(Object.keys(generationConfig).length === 0 ? {} : { generationConfig }),
    ...toolFields(request),
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
        readonly functionCall?: {
          readonly id?: unknown
          readonly name?: unknown
          readonly args?: unknown
        } | null
        readonly thoughtSignature?: unknown
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
  readonly responseId?: unknown
  readonly error?: unknown
}

/**
 * An id for a call Gemini gave none: from the response's own id and the call's place in it (the same
 * reply always names its calls alike), random only when the response has no id either.
 */
const madeId = (responseId: unknown, index: number) =>
  typeof responseId === "string" && responseId !== ""
    ? `call_${responseId}_${index}`
    : `call_${randomUUID().replaceAll("-", "")}`

export const generateContentDecoder = (provider: ProviderName, secret: string): MakeDecoder =>
  sseOrJson(provider, (sink) => {
    let finishReason: string | undefined
    let usage: Usage | null = null
    // Gemini says STOP after a function call; OpenAI's vocabulary (DAC's) says tool_calls.
    let calls = 0

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
        const call = part.functionCall
        if (typeof call === "object" && call !== null && typeof call.name === "string") {
          // Whole calls, several per reply possibly; only gemini-3-flash names them: the others get an id here.
          const signature = typeof part.thoughtSignature === "string" ? part.thoughtSignature : undefined
          const index = calls++
          sink.emit(
            toolCallDelta(index, JSON.stringify(call.args ?? {}), {
              id: typeof call.id === "string" && call.id !== "" ? call.id : madeId(chunk.responseId, index),
              name: call.name,
              ...(signature === undefined ? {} : { extra: { thoughtSignature: signature } }),
            }),
          )
        }
      }
      if (typeof candidate?.finishReason === "string") finishReason = candidate.finishReason
      if (typeof chunk.promptFeedback?.blockReason === "string") finishReason ??= "SAFETY"
      return undefined
    }

    const emitText = (text: string) => sink.emit(textDelta(text))
    const complete = () => {
      if (finishReason === undefined) return sink.fail(truncated(provider, "a finishReason"))
      if (finishReason === "MALFORMED_FUNCTION_CALL" || finishReason === "UNEXPECTED_TOOL_CALL") {
        // Not an empty `stop`: the model tried to call a function and Gemini refused what it wrote.
        return sink.fail(
          new StreamFailed({ provider, message: `${provider} ended the reply with ${finishReason}` }),
        )
      }
      const reason = finishReasonOf(finishReason)
      sink.emit(finish(calls > 0 && reason === "stop" ? "tool_calls" : reason, usage))
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
