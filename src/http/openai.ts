import { createHash } from "node:crypto"
import { Effect, Exit, Layer, Schema, SchemaIssue } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { AppConfig, isProviderName, type ModelTarget } from "../config.ts"
import type { ChatRequest } from "../domain/chat.ts"
import { inlineImageBytes, textOf } from "../domain/content.ts"
import { IdempotencyKey, OrgId } from "../domain/ids.ts"
import type { Caller } from "../domain/keys.ts"
import { ApiKeys } from "../engine/api-keys.ts"
import { type StartedTurn, Turns } from "../engine/turns.ts"
import { unsupportedOption } from "../providers/capabilities.ts"
import type { ChatMessage } from "../providers/provider.ts"
import { Providers } from "../providers/providers.ts"
import { headerCaller } from "./caller.ts"
import { type DescribedError, retryAfterHeader } from "./errors.ts"
import { subscribeBody } from "./listener-body.ts"
import { isBodyTooLarge } from "./middleware.ts"
import { ChoicesBody, completeChoices, startChoices } from "./openai-choices.ts"
import {
  type CompletionHead,
  choiceOf,
  chunkFormat,
  doneBytes,
  roleChunk,
  sumUsage,
  usageChunk,
  usageOf,
} from "./openai-chunks.ts"
import { openAiError } from "./openai-errors.ts"
import { listModels, modelList, retrieveModel } from "./openai-models.ts"
import { unsupportedParameter } from "./openai-parameters.ts"
import { CompletionRequest, chatMessageOf, messageProblem, optionsOf } from "./openai-request.ts"
import { presentedKey } from "./org.ts"
import { sseResponse } from "./stream.ts"

const decodeRequest = Schema.decodeUnknownExit(CompletionRequest, { errors: "all" })

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const fromDescribed = (error: DescribedError & { readonly retryAfterMs?: number | undefined }) =>
  openAiError(
    error.status,
    error.code,
    error.message,
    error.retryAfterMs === undefined ? {} : retryAfterHeader(error.retryAfterMs),
  )

/**
 * `AUTH_MODE=header` only: any bearer becomes an org of its own (its hash), as before API keys.
 * Hashing a key costs more than the rest of reading a request: a client's key is hashed once.
 */
const orgsByKey = new Map<string, OrgId>()
const maxRememberedKeys = 10_000

const orgOfKey = (key: string): OrgId => {
  let org = orgsByKey.get(key)
  if (org === undefined) {
    org = `key-${createHash("sha256").update(key).digest("hex").slice(0, 24)}` as OrgId
    // Bounded: a flood of distinct keys starts the memo over rather than growing it.
    if (orgsByKey.size >= maxRememberedKeys) orgsByKey.clear()
    orgsByKey.set(key, org)
  }
  return org
}

/**
 * The caller's org: a bearer token (hashed, so the key itself never becomes an id that is logged)
 * or `x-org-id`.
 */
const headerModeOrgOf = (
  headers: Readonly<Record<string, string | undefined>>,
): OrgId | "invalid" | undefined => {
  const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? "")?.[1]?.trim()
  if (bearer) return orgOfKey(bearer)
  const org = headers["x-org-id"]
  if (org === undefined || org === "") return undefined
  return isOrgId(org) ? org : "invalid"
}

const isOrgId = Schema.is(OrgId)
const isIdempotencyKey = Schema.is(IdempotencyKey)

/** `messages.0.content` → `messages[0].content`, as OpenAI names a field in `param`. */
const paramOf = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>(
    (name, key) =>
      typeof key === "number" ? `${name}[${key}]` : name === "" ? String(key) : `${name}.${String(key)}`,
    "",
  )

/** Every problem of the body, bounded (a hostile body can have thousands), and the first one's field. */
const describeIssues = (issue: SchemaIssue.Issue) => {
  const issues = formatIssues(issue).issues
  const shown = issues.slice(0, 10).map((i) => {
    const param = paramOf((i.path ?? []).map((key) => (typeof key === "object" ? key.key : key)))
    return param === "" ? i.message : `${param}: ${i.message}`
  })
  const more = issues.length > 10 ? `; … (${issues.length} problems in all)` : ""
  const first = issues[0]?.path ?? []
  const param = paramOf(first.map((key) => (typeof key === "object" ? key.key : key)))
  return { message: shown.join("; ") + more, param: param === "" ? null : param }
}

/** OpenAI's chunk stream for one choice: a role chunk at once, content chunks, finish, usage, `[DONE]`. */
const chunkBody = (turn: StartedTurn, head: CompletionHead, includeUsage: boolean, stalledWriteMs: number) =>
  subscribeBody(
    turn.generation,
    turn.requestId,
    -1,
    chunkFormat(head, 0, (usage) =>
      includeUsage ? Buffer.concat([usageChunk(head, usage), doneBytes]) : doneBytes,
    ),
    [roleChunk(head, 0)],
    turn.record,
    stalledWriteMs,
  )

/** The id, time and model every chunk (or the whole reply) of a completion names. */
const completionHead = (turn: StartedTurn, model: string): CompletionHead => ({
  id: `chatcmpl-${turn.requestId}`,
  created: Math.floor(Date.now() / 1000),
  model,
})

/** What a 400 for an unusable `model` says is accepted, written once: the format and up to 10 aliases. */
const expectedModel = (aliases: ReadonlyMap<string, ModelTarget>) => {
  const format = `model must be "provider/model" (e.g. "mock/faststream-ttft")`
  if (aliases.size === 0) return format
  const names = [...aliases.keys()]
  const shown = names.slice(0, 10).join(", ")
  const more = names.length > 10 ? `, … (${names.length} in all)` : ""
  return `${format} or a configured alias (${shown}${more})`
}

/**
 * `POST /v1/chat/completions`: OpenAI's request and response shapes (streaming and not), so the
 * official SDKs work unchanged. `model` is a configured alias (`MODEL_ALIASES`, looked up first) or
 * `provider/model` (e.g. `mock/faststream-ttft`); the response echoes it as sent. Tools, images and
 * JSON output are passed on in each provider's terms (openai-request.ts, providers/capabilities.ts);
 * tool calls come back in OpenAI's shape (openai-chunks.ts); `n` > 1 is n calls merged
 * (openai-choices.ts). The pacer, coalescer (keyed on the whole conversation;
 * tool turns bypass it), fan-out and cancel all apply; nothing is stored as a thread. Beside it,
 * `GET /v1/models[/{id}]` (openai-models.ts).
 */
export const OpenAiRoute = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const keys = yield* ApiKeys
    const expected = expectedModel(config.modelAliases)
    const callerOf = config.authMode === "header" ? headerModeCaller : keyCaller(keys)
    const models = modelList(config, (yield* Providers).status)
    const list = listModels(models)
    /** A models route behind the same authentication as completions. */
    const authenticated = (answer: (url: string) => HttpServerResponse.HttpServerResponse) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const caller = yield* callerOf(request.headers)
        if (HttpServerResponse.isHttpServerResponse(caller)) return caller
        return answer(request.url)
      })
    return Layer.mergeAll(
      HttpRouter.add("POST", "/v1/chat/completions", completions(config, expected, callerOf)),
      // `/v1/models/*` is also `/v1/models` (HttpRouter registers both): the list, or one model.
      HttpRouter.add(
        "GET",
        "/v1/models/*",
        authenticated((url) => {
          const path = url.split("?")[0]!.replace(/^\/v1\/models\/?/, "")
          if (path === "") return list()
          let id = path
          try {
            id = decodeURIComponent(path)
          } catch {
            // Not percent-encoded as it should be: looked up as sent.
          }
          return retrieveModel(models, id)
        }),
      ),
    )
  }),
)

/** The caller, or the OpenAI-shaped answer refusing it (401 so the SDKs raise AuthenticationError). */
type CallerOf = (
  headers: Readonly<Record<string, string | undefined>>,
) => Effect.Effect<Caller | HttpServerResponse.HttpServerResponse>

const keyCaller =
  (keys: ApiKeys["Service"]): CallerOf =>
  (headers) =>
    keys
      .authenticate(presentedKey(headers))
      .pipe(Effect.catch((error) => Effect.succeed(openAiError(error.status, error.code, error.message))))

const headerModeCaller: CallerOf = (headers) => {
  const org = headerModeOrgOf(headers)
  if (org === undefined) {
    return Effect.succeed(
      openAiError(401, "invalid_api_key", "send Authorization: Bearer <key> or an x-org-id header"),
    )
  }
  if (org === "invalid") {
    return Effect.succeed(
      openAiError(
        400,
        "invalid_org_id",
        "x-org-id must be 1-128 characters of letters, digits and . _ : @ -",
      ),
    )
  }
  return Effect.succeed(headerCaller(org))
}

interface CompletionLimits {
  readonly modelAliases: ReadonlyMap<string, ModelTarget>
  readonly maxMessagesPerRequest: number
  readonly maxContentChars: number
  /** MAX_IMAGE_BYTES: the largest image (decoded) a message may carry inline. */
  readonly maxImageBytes: number
  /** STALLED_WRITE_TIMEOUT_MS: a stream whose client reads nothing this long is closed. */
  readonly stalledWriteTimeoutMs: number
}

/** The body as JSON, or the 400/413 answer it deserves. */
const readJson = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const text = yield* request.text.pipe(Effect.result)
  if (text._tag === "Failure") {
    return isBodyTooLarge(text.failure)
      ? openAiError(413, "body_too_large", "the request body is too large")
      : openAiError(400, "invalid_json", "the body could not be read")
  }
  try {
    return { json: JSON.parse(text.success) as unknown }
  } catch {
    return openAiError(400, "invalid_json", "the body is not valid JSON")
  }
})

/**
 * Bounds checked before the schema runs: the message count (decoding a million tiny messages, each
 * wrong, would cost more than refusing them) and each message's length, by MAX_CONTENT_CHARS.
 */
const outOfBounds = (json: unknown, limits: CompletionLimits) => {
  const messages = (json as { messages?: unknown } | null)?.messages
  if (!Array.isArray(messages)) return undefined
  if (messages.length > limits.maxMessagesPerRequest) {
    return openAiError(
      400,
      "invalid_request",
      `messages: ${messages.length} messages; the limit is ${limits.maxMessagesPerRequest} (MAX_MESSAGES_PER_REQUEST)`,
      {},
      "messages",
    )
  }
  for (const [index, message] of messages.entries()) {
    const content = (message as { content?: unknown } | null)?.content
    const length =
      typeof content === "string"
        ? content.length
        : Array.isArray(content)
          ? content.reduce<number>((n, part) => {
              const text = (part as { text?: unknown } | null)?.text
              return n + (typeof text === "string" ? text.length : 0)
            }, 0)
          : 0
    if (length > limits.maxContentChars) {
      return openAiError(
        413,
        "content_too_large",
        `messages[${index}].content is ${length} characters; the limit is ${limits.maxContentChars} (MAX_CONTENT_CHARS)`,
        {},
        `messages[${index}].content`,
      )
    }
  }
  return undefined
}

/** The 413 for the first inline image larger than MAX_IMAGE_BYTES (decoded), if any. */
const imageTooLarge = (conversation: ReadonlyArray<ChatMessage>, maxImageBytes: number) => {
  for (const [index, message] of conversation.entries()) {
    if (typeof message.content === "string") continue
    for (const [at, part] of message.content.entries()) {
      if (part.type !== "image_url") continue
      const bytes = inlineImageBytes(part.url)
      if (bytes !== undefined && bytes > maxImageBytes) {
        const param = `messages[${index}].content[${at}].image_url`
        return openAiError(
          413,
          "image_too_large",
          `${param} is an image of ${bytes} bytes; the limit is ${maxImageBytes} (MAX_IMAGE_BYTES)`,
          {},
          param,
        )
      }
    }
  }
  return undefined
}

const completions = (limits: CompletionLimits, expectedModel: string, callerOf: CallerOf) =>
  Effect.gen(function* () {
    const { modelAliases, stalledWriteTimeoutMs: stalledWriteMs } = limits
    const request = yield* HttpServerRequest.HttpServerRequest
    const turns = yield* Turns
    const caller = yield* callerOf(request.headers)
    if (HttpServerResponse.isHttpServerResponse(caller)) return caller
    const org = caller.org
    const idempotencyKey = request.headers["idempotency-key"]
    if (idempotencyKey !== undefined && !isIdempotencyKey(idempotencyKey)) {
      return openAiError(
        400,
        "invalid_request",
        "invalid header: idempotency-key: must be at most 255 characters of printable ASCII",
      )
    }
    const read = yield* readJson
    if (HttpServerResponse.isHttpServerResponse(read)) return read
    const json = { value: read.json }
    const refused = outOfBounds(json.value, limits)
    if (refused !== undefined) return refused
    const decoded = decodeRequest(json.value)
    if (Exit.isFailure(decoded)) {
      const failure = decoded.cause.reasons.find((reason) => reason._tag === "Fail")
      const { message, param } = failure
        ? describeIssues(failure.error.issue)
        : { message: "invalid request", param: null }
      return openAiError(400, "invalid_request", message, {}, param)
    }
    const unsupported = unsupportedParameter(json.value)
    if (unsupported !== undefined) {
      return openAiError(
        400,
        "unsupported_parameter",
        `"${unsupported}" is not supported: DAC passes on model, messages, stream, stream_options, max_tokens, max_completion_tokens, temperature, top_p, stop, n, tools, tool_choice, parallel_tool_calls and response_format; leave "${unsupported}" out or send its default`,
        {},
        unsupported,
      )
    }
    const body = decoded.value
    for (const [index, message] of body.messages.entries()) {
      const problem = messageProblem(message, index)
      if (problem !== undefined)
        return openAiError(400, "invalid_request", problem.message, {}, problem.param)
    }
    const alias = modelAliases.get(body.model)
    const slash = alias === undefined ? body.model.indexOf("/") : -1
    if (alias === undefined && (slash <= 0 || slash === body.model.length - 1)) {
      return openAiError(400, "model_not_found", `${expectedModel}, got "${body.model}"`)
    }
    const provider = alias === undefined ? body.model.slice(0, slash) : alias.provider
    const conversation = body.messages.map(chatMessageOf)
    const tooLarge = imageTooLarge(conversation, limits.maxImageBytes)
    if (tooLarge !== undefined) return tooLarge
    const options = optionsOf(body)
    if (options !== undefined && isProviderName(provider)) {
      const problem = unsupportedOption(provider, options)
      if (problem !== undefined) return openAiError(400, "unsupported_parameter", problem)
    }
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined
    const stop = typeof body.stop === "string" ? [body.stop] : (body.stop ?? [])
    const chat: ChatRequest = {
      role: "user",
      content: textOf(conversation.at(-1)!.content),
      provider,
      model: alias === undefined ? body.model.slice(slash + 1) : alias.model,
      ...(body.temperature == null ? {} : { temperature: body.temperature }),
      ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
      ...(body.top_p == null ? {} : { top_p: body.top_p }),
      ...(stop.length === 0 ? {} : { stop }),
    }
    const stream = body.stream === true
    const input = {
      org,
      caller,
      threadId: null,
      conversation,
      body: chat,
      options,
      mode: stream ? ("stream" as const) : ("wait" as const),
      idempotencyKey: idempotencyKey || undefined,
      coalesce: request.headers["x-dac-coalesce"]?.toLowerCase() !== "off",
    }
    const n = body.n ?? 1
    const includeUsage = body.stream_options?.include_usage === true
    if (stream) {
      const started = yield* (
        n === 1 ? Effect.map(turns.start(input), (turn) => [turn]) : startChoices(turns, input, n)
      ).pipe(Effect.result)
      if (started._tag === "Failure") return fromDescribed(started.failure)
      const head = completionHead(started.success[0]!, body.model)
      return sseResponse(
        n === 1
          ? chunkBody(started.success[0]!, head, includeUsage, stalledWriteMs)
          : new ChoicesBody(started.success, head, includeUsage, stalledWriteMs),
      )
    }
    const result = yield* (
      n === 1 ? Effect.map(turns.complete(input), (one) => [one]) : completeChoices(turns, input, n)
    ).pipe(Effect.result)
    if (result._tag === "Failure") return fromDescribed(result.failure)
    const head = completionHead(result.success[0]!.turn, body.model)
    return HttpServerResponse.jsonUnsafe({
      id: head.id,
      object: "chat.completion",
      created: head.created,
      model: head.model,
      choices: result.success.map(({ outcome }, index) => choiceOf(index, outcome)),
      usage: usageOf(sumUsage(result.success.map(({ outcome }) => outcome.usage))),
    })
  })
