import { Effect, Exit, Option, Redacted, References, type Scope, Stream } from "effect"
import type { ProviderSettings, UpstreamTimeouts } from "../../src/config.ts"
import type { ToolCall } from "../../src/domain/content.ts"
import type { ProviderError } from "../../src/domain/provider-errors.ts"
import type { Usage } from "../../src/domain/thread.ts"
import { ToolCallAccumulator } from "../../src/engine/tool-calls.ts"
import type { EventSink, MakeDecoder } from "../../src/providers/http.ts"
import type { ProviderAdapter, ProviderEvent, ProviderRequest } from "../../src/providers/provider.ts"
import { remoteAdapters } from "../../src/providers/remote.ts"
import type { FakeProvider, FakeUpstream } from "../support/fake-upstream.ts"

/** Short enough that a hung test fails fast, long enough for a loaded CI machine. */
export const testTimeouts: UpstreamTimeouts = {
  connectMs: 2_000,
  firstByteMs: 3_000,
  idleMs: 3_000,
  maxAttempts: 1,
  maxRetryDelayMs: 2_000,
}

export const testKey = (provider: FakeProvider) => `test-key-${provider}`

export const settingsFor = (fake: FakeUpstream, provider: FakeProvider): ProviderSettings => ({
  name: provider,
  apiKey: Option.some(Redacted.make(testKey(provider))),
  baseUrl: fake.baseUrl(provider),
  rps: 50,
  burst: 100,
  concurrency: 16,
  maxQueue: 1_000,
})

/** The real adapter of `provider` (as remote.ts wires it), pointed at the fake upstream. */
export const adapterFor = (
  fake: FakeUpstream,
  provider: FakeProvider,
  timeouts: Partial<UpstreamTimeouts> = {},
): Effect.Effect<ProviderAdapter, never, Scope.Scope> =>
  remoteAdapters[provider]!(settingsFor(fake, provider), { ...testTimeouts, ...timeouts })

export const requestFor = (
  provider: FakeProvider,
  overrides: Partial<ProviderRequest> = {},
): ProviderRequest => ({
  provider,
  model: provider === "gemini" ? "gemini-2.0-flash" : `${provider}-test-model`,
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "What is the capital of the UK?" },
  ],
  ...overrides,
})

/** What a stream produced: its events in order, then either its end or its error. */
export interface Outcome {
  readonly events: ReadonlyArray<ProviderEvent>
  readonly text: string
  readonly finish: { readonly reason: string; readonly usage: Usage | null } | undefined
  readonly error: ProviderError | undefined
  /** The tool calls, put together from the fragments as the engine puts them together. */
  readonly toolCalls: ReadonlyArray<ToolCall> | undefined
}

const outcomeOf = (events: ReadonlyArray<ProviderEvent>, error: ProviderError | undefined): Outcome => {
  let text = ""
  let finish: Outcome["finish"]
  const calls = new ToolCallAccumulator()
  for (const event of events) {
    if (event._tag === "ToolCallDelta") calls.add(event)
    if (event._tag === "TextDelta") text += event.text
    if (event._tag === "Finish") finish = { reason: event.reason, usage: event.usage }
  }
  return { events, text, finish, error, toolCalls: calls.result() }
}

/** Runs a provider stream to its end, keeping what it emitted before a failure. */
export const collect = (stream: Stream.Stream<ProviderEvent, ProviderError>): Effect.Effect<Outcome> =>
  Effect.suspend(() => {
    const events: Array<ProviderEvent> = []
    return stream.pipe(
      Stream.runForEach((event) => Effect.sync(() => events.push(event))),
      Effect.exit,
      // Retries log a warning each; the tests assert on what happened instead.
      Effect.provideService(References.MinimumLogLevel, "Error"),
      Effect.map((exit) => {
        if (Exit.isSuccess(exit)) return outcomeOf(events, undefined)
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
        if (error === undefined) throw new Error(`stream died: ${String(exit.cause)}`)
        return outcomeOf(events, error.error)
      }),
    )
  })

/**
 * Runs a decoder over body chunks with no HTTP in between, as the bridge would: FirstByte is the
 * bridge's job, so it is not among the events here.
 */
export const decodeChunks = (
  makeDecoder: MakeDecoder,
  chunks: ReadonlyArray<Uint8Array>,
  contentType = "text/event-stream",
): Outcome => {
  const events: Array<ProviderEvent> = []
  let error: ProviderError | undefined
  const sink: EventSink = {
    emit: (event) => {
      if (error === undefined) events.push(event)
    },
    fail: (failure) => {
      error ??= failure
    },
  }
  const decoder = makeDecoder(sink, contentType)
  for (const chunk of chunks) {
    if (error !== undefined) break
    decoder.onBytes(chunk)
  }
  if (error === undefined) decoder.onEnd()
  return outcomeOf(events, error)
}

/** `bytes` cut at `cuts` (byte offsets, any order, out-of-range ignored). */
export const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>): ReadonlyArray<Uint8Array> => {
  const points = [...new Set(cuts)].filter((at) => at > 0 && at < bytes.length).sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let start = 0
  for (const cut of [...points, bytes.length]) {
    out.push(bytes.subarray(start, cut))
    start = cut
  }
  return out
}
