import { expect } from "vitest"
import type { Usage } from "../../src/domain/thread.ts"
import type { FakeProvider } from "../support/fake-upstream.ts"
import type { Outcome } from "./harness.ts"

/**
 * What DAC must make of each transcript in ../shared/wire, played by its provider's route.
 * A reply: its text, finish reason (OpenAI vocabulary) and usage. An error: its typed error, with
 * the text streamed before it (if any). Error cases assume no retry (maxAttempts 1).
 */
export type Expected =
  | {
      readonly provider: FakeProvider
      readonly text: string | RegExp
      readonly finish: string
      readonly usage: Usage | null
      /** The tool calls, whole; `signature` matches Gemini's thoughtSignature (absent: none). */
      readonly toolCalls?: ReadonlyArray<ExpectedCall>
    }
  | {
      readonly provider: FakeProvider
      /** Text that reached the client before the failure. */
      readonly text?: string
      readonly error: {
        readonly tag: string
        readonly code: string
        readonly status: number
        readonly retryable: boolean
        readonly retryAfterMs?: number
        readonly message: RegExp
      }
    }

export interface ExpectedCall {
  readonly id: string
  readonly name: string
  readonly arguments: string
  readonly signature?: RegExp
}

const rateLimited = {
  tag: "RateLimited",
  code: "upstream_rate_limited",
  status: 503,
  retryable: true,
} as const
const unauthorized = {
  tag: "Unauthorized",
  code: "upstream_unauthorized",
  status: 502,
  retryable: false,
} as const
const badRequest = { tag: "BadRequest", code: "upstream_bad_request", status: 400, retryable: false } as const
const overloaded = { tag: "Overloaded", code: "upstream_overloaded", status: 503, retryable: true } as const
const streamFailed = {
  tag: "StreamFailed",
  code: "upstream_stream_error",
  status: 502,
  retryable: false,
} as const

/**
 * Replies that call tools: their text, finish reason, usage and the calls themselves, put together
 * from however many fragments the wire split them into. Gemini gives most calls no id: DAC makes
 * one from the response's id and the call's place.
 */
const toolReplies: Record<string, Expected> = {
  "openai-chat-stream-tool-calls": {
    provider: "openai",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 417, output_tokens: 44 },
    toolCalls: [
      { id: "call_NS4iQj14cDFwc0BnrKqDHavt", name: "get_weather", arguments: '{"city": "Mexico City"}' },
      { id: "call_SkGkkGDvHQEEk0CGbnAh2AQw", name: "get_product_name", arguments: "{}" },
    ],
  },
  "openai-chat-nonstream-tool-calls": {
    provider: "openai",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 92, output_tokens: 17 },
    toolCalls: [
      { id: "call_TTY8UFNo7rNCaOBUNtlRSvMG", name: "lookup_population", arguments: '{"country":"Crumpet"}' },
    ],
  },
  "openai-chat-nonstream-tool-calls-parallel": {
    provider: "openai",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 70, output_tokens: 46 },
    toolCalls: [
      {
        id: "call_rU416PaA6UFgxje2GemBVAwt",
        name: "get_current_weather",
        arguments: '{"location": "San Francisco"}',
      },
      {
        id: "call_iqCZB6DkOW5TPjHK29vpiAFa",
        name: "get_current_weather",
        arguments: '{"location": "Boston"}',
      },
    ],
  },
  "anthropic-messages-stream-tool-use": {
    provider: "anthropic",
    text: "Certainly! I can help you with that information. To get the weather and current time in San Francisco, I'll need to use two separate functions. Let me fetch that data for you.",
    finish: "tool_calls",
    usage: { input_tokens: 506, output_tokens: 153 },
    toolCalls: [
      {
        id: "toolu_014x5X91kx3fvdhpLvwXZWE2",
        name: "get_weather",
        arguments: '{"location": "San Francisco, CA", "unit": "celsius"}',
      },
      {
        id: "toolu_0121kXsENLvoDZ72LCuAnCCz",
        name: "get_time",
        arguments: '{"timezone": "America/Los_Angeles"}',
      },
    ],
  },
  "anthropic-messages-stream-tool-use-empty-input": {
    provider: "anthropic",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 542, output_tokens: 62 },
    toolCalls: [
      // A tool without parameters streams a single "": its arguments are {}.
      { id: "toolu_01LtHJmixrs9NcWQkK8hu8hj", name: "pelican_name_generator", arguments: "{}" },
      { id: "toolu_01N8a4jWyf116qKTMqKKmjyt", name: "pelican_name_generator", arguments: "{}" },
    ],
  },
  "anthropic-messages-nonstream-tool-use": {
    provider: "anthropic",
    text: "I'll help you with that by checking the weather and news for San Francisco right away.\n\nFirst, let's check the weather:",
    finish: "tool_calls",
    usage: { input_tokens: 374, output_tokens: 82 },
    toolCalls: [
      {
        id: "toolu_016q9vtSd8CY2vnZSpEp1j4o",
        name: "get_weather",
        arguments: '{"location":"San Francisco"}',
      },
    ],
  },
  // Gemini finishes a function call with STOP: in OpenAI's vocabulary that is tool_calls.
  "gemini-stream-function-call": {
    provider: "gemini",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 29, output_tokens: 212 },
    toolCalls: [
      {
        id: "call_QUVVadTSNJ6_qtsPvN7J8Q0_0",
        name: "get_country",
        arguments: "{}",
        signature: /^EpwICpkIAXLI2nxlU6gs[A-Za-z0-9+/]+={0,2}$/,
      },
    ],
  },
  "gemini-stream-function-call-2.0": {
    provider: "gemini",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 52, output_tokens: 5 },
    toolCalls: [
      { id: "call_1lpeaMTxIpW1nvgP-O3vwQY_0", name: "get_capital", arguments: '{"country":"France"}' },
    ],
  },
  "gemini-stream-function-call-id": {
    provider: "gemini",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 29, output_tokens: 81 },
    toolCalls: [
      { id: "96c1su3s", name: "get_user_country", arguments: "{}", signature: /^EpIDCo8DAQw51scL\+dHf/ },
    ],
  },
  "gemini-nonstream-function-call": {
    provider: "gemini",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 38, output_tokens: 509 },
    toolCalls: [
      {
        id: "call_38CHaLjMG6TujrEPtvTiuQk_0",
        name: "now",
        arguments: "{}",
        signature: /^CtQOAVSoXO74PmYr9AFu/,
      },
    ],
  },
  "gemini-nonstream-function-call-parallel": {
    provider: "gemini",
    text: "",
    finish: "tool_calls",
    usage: { input_tokens: 83, output_tokens: 220 },
    toolCalls: [
      // Only the first of parallel calls carries a signature.
      {
        id: "call_wOd8abGuO5rgz7IP5tLEGA_0",
        name: "generate_topic",
        arguments: "{}",
        signature: /^Es8FCswFAXLI2nxFGW9o/,
      },
      { id: "call_wOd8abGuO5rgz7IP5tLEGA_1", name: "generate_topic", arguments: "{}" },
      { id: "call_wOd8abGuO5rgz7IP5tLEGA_2", name: "generate_topic", arguments: "{}" },
    ],
  },
}

export const expectations: Record<string, Expected> = {
  ...toolReplies,
  // OpenAI Chat Completions
  "openai-chat-stream": {
    provider: "openai",
    text: "The capital of the UK is London.",
    finish: "stop",
    usage: { input_tokens: 78, output_tokens: 9 },
  },
  "openai-chat-stream-2024": {
    provider: "openai",
    text: "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or a weather app.",
    finish: "stop",
    usage: { input_tokens: 14, output_tokens: 30 },
  },
  "openai-chat-nonstream": {
    provider: "openai",
    text: /^\*\*Holiday Name:\*\* Galaxy Day {2}\n\n\*\*Date:\*\* October 31st[\s\S]{1700,}$/,
    finish: "stop",
    usage: { input_tokens: 16, output_tokens: 363 },
  },
  "openai-error-401": {
    provider: "openai",
    error: { ...unauthorized, message: /^Incorrect API key provided/ },
  },
  "openai-error-429-insufficient-quota": {
    provider: "openai",
    error: { ...rateLimited, message: /^You exceeded your current quota/ },
  },
  "openai-error-429-rate-limit": {
    provider: "openai",
    error: { ...rateLimited, retryAfterMs: 1_000, message: /^Rate limit reached for gpt-4o-mini/ },
  },
  // The Responses API is not a protocol DAC speaks: the Chat Completions adapter refuses it cleanly.
  "openai-responses-stream": {
    provider: "openai",
    error: { ...streamFailed, message: /expected Chat Completions chunks, got a "response.created" event/ },
  },
  "openai-responses-stream-error": {
    provider: "openai",
    error: { ...streamFailed, message: /expected Chat Completions chunks, got a "response.created" event/ },
  },

  // Perplexity: cumulative usage on every chunk, no [DONE]
  "perplexity-stream": {
    provider: "perplexity",
    text: "The current population of **[2][3]",
    finish: "stop",
    usage: { input_tokens: 10, output_tokens: 336 },
  },
  "perplexity-error-401": {
    provider: "perplexity",
    error: { ...unauthorized, message: /^401 Authorization Required$/ },
  },

  // OpenRouter: keepalive comments, usage chunk with empty choices, errors inside the 200 stream
  "openrouter-stream": {
    provider: "openrouter",
    text: "Hello!",
    finish: "stop",
    usage: { input_tokens: 254, output_tokens: 5 },
  },
  "openrouter-stream-error": {
    provider: "openrouter",
    error: { ...streamFailed, message: /^Token limit reached$/ },
  },
  "openrouter-error-429": {
    provider: "openrouter",
    error: {
      ...rateLimited,
      message: /^Provider returned error: google\/gemini-2.0-flash-exp:free is temporarily/,
    },
  },

  // Anthropic Messages
  "anthropic-messages-stream": {
    provider: "anthropic",
    text: "2",
    finish: "stop",
    usage: { input_tokens: 20, output_tokens: 5 },
  },
  "anthropic-messages-nonstream": {
    provider: "anthropic",
    text: "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?",
    finish: "stop",
    usage: { input_tokens: 12, output_tokens: 29 },
  },
  "anthropic-messages-stream-error": {
    provider: "anthropic",
    text: "Hello",
    error: { ...overloaded, message: /^Overloaded$/ },
  },
  "anthropic-error-400": {
    provider: "anthropic",
    error: { ...badRequest, message: /^max_tokens: Field required$/ },
  },
  "anthropic-error-401": {
    provider: "anthropic",
    error: { ...unauthorized, message: /^invalid x-api-key$/ },
  },
  "anthropic-error-429": {
    provider: "anthropic",
    error: { ...rateLimited, retryAfterMs: 8_000, message: /^This request would exceed the rate limit/ },
  },
  "anthropic-error-529": { provider: "anthropic", error: { ...overloaded, message: /^Overloaded$/ } },

  // Gemini
  "gemini-stream": {
    provider: "gemini",
    text: "The capital of France is Paris.\n",
    finish: "stop",
    // Cumulative: the last chunk's counts (13, not the 15 of the earlier chunks), taken once.
    usage: { input_tokens: 13, output_tokens: 8 },
  },
  "gemini-stream-firebase": {
    provider: "gemini",
    text: "The capital of Wyoming is **Cheyenne**.\n",
    finish: "stop",
    usage: { input_tokens: 7, output_tokens: 10 },
  },
  "gemini-nonstream": {
    provider: "gemini",
    text: "Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n",
    finish: "stop",
    usage: { input_tokens: 7, output_tokens: 22 },
  },
  "gemini-error-400-api-key": {
    provider: "gemini",
    error: { ...unauthorized, message: /^API key not valid/ },
  },
  "gemini-error-404-model": {
    provider: "gemini",
    error: { ...badRequest, message: /^models\/gemini-5.0-flash is not found/ },
  },
  "gemini-error-429": {
    provider: "gemini",
    error: { ...rateLimited, retryAfterMs: 34_400, message: /^You exceeded your current quota/ },
  },
  "gemini-error-503": { provider: "gemini", error: { ...overloaded, message: /^The model is overloaded/ } },
}

/** Checks an outcome against what the transcript should give; whatever carried the bytes. */
export const expectOutcome = (outcome: Outcome, expected: Expected) => {
  if ("error" in expected) {
    expect(outcome.finish).toBeUndefined()
    expect(outcome.text).toBe(expected.text ?? "")
    const error = outcome.error
    expect(error?._tag).toBe(expected.error.tag)
    expect(error?.code).toBe(expected.error.code)
    expect(error?.status).toBe(expected.error.status)
    expect(error?.retryable).toBe(expected.error.retryable)
    expect(error?.retryAfterMs).toBe(expected.error.retryAfterMs)
    expect(error?.message).toMatch(expected.error.message)
    expect(error?.provider).toBe(expected.provider)
  } else {
    expect(outcome.error).toBeUndefined()
    if (typeof expected.text === "string") expect(outcome.text).toBe(expected.text)
    else expect(outcome.text).toMatch(expected.text)
    expect(outcome.finish).toEqual({ reason: expected.finish, usage: expected.usage })
    const calls = outcome.toolCalls ?? []
    expect(calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args }))).toEqual(
      (expected.toolCalls ?? []).map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
    )
    for (const [index, call] of (expected.toolCalls ?? []).entries()) {
      const signature = calls[index]?.extra?.thoughtSignature
      if (call.signature === undefined) expect(signature).toBeUndefined()
      else expect(signature).toMatch(call.signature)
    }
  }
}
