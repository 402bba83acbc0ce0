import type { ProviderName } from "../config.ts"
import { StreamFailed } from "../domain/provider-errors.ts"
import type { Usage } from "../domain/thread.ts"
import type { EventSink, MakeDecoder } from "./http.ts"
import { makeSseDecoder } from "./sse.ts"

/**
 * Helpers the adapters share to turn a response body into events. Chunks are read field by field
 * from `JSON.parse` output rather than through a Schema: this runs once per token, and only a few
 * fields matter, each checked with `typeof` before use.
 */

export interface BodyHandlers {
  /** One SSE event of a streamed reply. */
  readonly event: (event: string, data: string) => void
  /** The streamed body ended (its last event already delivered): emit Finish or fail. */
  readonly end: () => void
  /** The whole body of a reply the provider sent as one JSON document instead of a stream. */
  readonly json: (value: unknown) => void
}

/**
 * The usual decoder: SSE events one by one, or, when the provider answered `application/json`
 * (an endpoint or proxy that ignores the stream flag), the whole document at its end.
 * `handlers` is called once per response, so its closure holds that response's state.
 */
export const sseOrJson =
  (provider: ProviderName, handlers: (sink: EventSink) => BodyHandlers): MakeDecoder =>
  (sink, contentType) => {
    const on = handlers(sink)
    if (contentType.includes("application/json")) {
      const parts: Array<Uint8Array> = []
      return {
        onBytes: (bytes) => {
          parts.push(bytes)
          return true
        },
        onEnd: () => {
          const value = parseJson(Buffer.concat(parts).toString("utf8"))
          if (value === undefined)
            return sink.fail(new StreamFailed({ provider, message: "the reply is not valid JSON" }))
          on.json(value)
        },
      }
    }
    // Whether the chunk being read dispatched an event: one flag per response, nothing per chunk.
    let dispatched = false
    const sse = makeSseDecoder((event, data) => {
      dispatched = true
      on.event(event, data)
    })
    const check = (problem: string | undefined) => {
      if (problem !== undefined) sink.fail(new StreamFailed({ provider, message: problem }))
    }
    return {
      onBytes: (bytes) => {
        dispatched = false
        check(sse.push(bytes))
        return dispatched
      },
      onEnd: () => {
        check(sse.end())
        on.end()
      },
    }
  }

/** `undefined` when the text is not JSON (JSON itself has no undefined). */
export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

export const unparseable = (provider: ProviderName, data: unknown) =>
  new StreamFailed({
    provider,
    message: `unparseable reply data: ${(typeof data === "string" ? data : JSON.stringify(data)).slice(0, 200)}`,
  })

const count = (value: unknown) =>
  typeof value === "number" && Number.isFinite(value) ? Math.round(value) : 0

/** Token counts as DAC stores them; `null` when the provider reported neither. */
export const usageOf = (input: unknown, output: unknown): Usage | null =>
  input === undefined && output === undefined
    ? null
    : { input_tokens: count(input), output_tokens: count(output) }
