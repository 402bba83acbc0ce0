import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { ProviderName } from "../../src/config.ts"
import { messagesDecoder } from "../../src/providers/anthropic.ts"
import { generateContentDecoder } from "../../src/providers/gemini.ts"
import type { MakeDecoder } from "../../src/providers/http.ts"
import { chatCompletionsDecoder } from "../../src/providers/openai-compatible.ts"
import { headerOf, loadTranscript, type Transcript, withBody } from "../support/wire.ts"
import { expectations, expectOutcome } from "./expectations.ts"
import { decodeChunks, splitAt } from "./harness.ts"
import { otherFramingVariant, streamedTranscripts, utf8Variant } from "./variants.ts"

const decoderFor = (provider: ProviderName): MakeDecoder => {
  switch (provider) {
    case "anthropic":
      return messagesDecoder(provider, "secret")
    case "gemini":
      return generateContentDecoder(provider, "secret")
    default:
      return chatCompletionsDecoder(provider, "secret")
  }
}

const providerOf = (transcript: Transcript) => expectations[transcript.name.split(" ")[0]!]!.provider

const decode = (transcript: Transcript, chunks: ReadonlyArray<Uint8Array> = [transcript.body]) =>
  decodeChunks(decoderFor(providerOf(transcript)), chunks, headerOf(transcript, "content-type") ?? "")

describe("provider decoders on the 200 transcripts, without HTTP", () => {
  for (const [name, expected] of Object.entries(expectations)) {
    if (loadTranscript(name).status !== 200) continue
    it(name, () => {
      const outcome = decode(loadTranscript(name))
      expectOutcome(outcome, expected)
      // One Finish at most, and always last.
      const finishes = outcome.events.filter((e) => e._tag === "Finish")
      expect(finishes.length).toBe(outcome.error ? 0 : 1)
      if (finishes.length === 1) expect(outcome.events.at(-1)).toBe(finishes[0])
    })
  }
})

describe("random splitting gives the same events (property)", () => {
  const cases = streamedTranscripts().flatMap((t) => [t, utf8Variant(t), otherFramingVariant(t)])
  for (const transcript of cases) {
    it(transcript.name, () => {
      const whole = decode(transcript)
      fc.assert(
        fc.property(fc.array(fc.nat({ max: transcript.body.length }), { maxLength: 60 }), (cuts) => {
          expect(decode(transcript, splitAt(transcript.body, cuts))).toEqual(whole)
        }),
        { numRuns: 100 },
      )
    })
  }

  it("keeps multi-byte text intact whatever the cuts", () => {
    const transcript = utf8Variant(loadTranscript("openai-chat-stream"))
    const whole = decode(transcript)
    const deltas = ["", "The", " capital", " of", " the", " UK", " is", " London", "."]
    expect(whole.text).toBe(deltas.map((delta) => `ü🌍${delta}`).join(""))
  })
})

describe("stream endings", () => {
  const openai = loadTranscript("openai-chat-stream")
  const text = new TextDecoder().decode(openai.body)

  it("accepts a stream without [DONE] once the finish reason came (the Perplexity way)", () => {
    const outcome = decode(withBody(openai, text.replace("data: [DONE]\n\n", "")))
    expect(outcome.error).toBeUndefined()
    expect(outcome.finish).toEqual({ reason: "stop", usage: { input_tokens: 78, output_tokens: 9 } })
  })

  it("fails a stream cut before its finish reason, keeping the text already given", () => {
    const cut = text.indexOf('"finish_reason":"stop"')
    const outcome = decode(withBody(openai, text.slice(0, text.lastIndexOf("data:", cut))))
    expect(outcome.text).toBe("The capital of the UK is London.")
    expect(outcome.error?._tag).toBe("StreamFailed")
    expect(outcome.error?.message).toMatch(/ended before its finish_reason/)
  })

  it("fails an Anthropic stream that ends without message_stop", () => {
    const anthropic = loadTranscript("anthropic-messages-stream")
    const body = new TextDecoder().decode(anthropic.body)
    const outcome = decode(withBody(anthropic, body.slice(0, body.indexOf("event: message_stop"))))
    expect(outcome.error?._tag).toBe("StreamFailed")
    expect(outcome.text).toBe("2")
  })

  it("fails a Gemini stream that ends without a finishReason", () => {
    const gemini = loadTranscript("gemini-stream")
    const body = new TextDecoder().decode(gemini.body)
    const outcome = decode(withBody(gemini, body.slice(0, body.lastIndexOf("data:"))))
    expect(outcome.error?._tag).toBe("StreamFailed")
    expect(outcome.text).toBe("The capital of France")
  })

  it("counts OpenAI usage once even when a chunk repeats it", () => {
    const usageChunk = text.slice(text.lastIndexOf("data: {"), text.indexOf("data: [DONE]"))
    const outcome = decode(withBody(openai, text.replace(usageChunk, usageChunk + usageChunk)))
    expect(outcome.finish?.usage).toEqual({ input_tokens: 78, output_tokens: 9 })
  })

  it("maps a Gemini error chunk inside a 200 stream to a typed error", () => {
    const gemini = loadTranscript("gemini-stream")
    const body = new TextDecoder().decode(gemini.body)
    const first = body.slice(0, body.indexOf("\r\n\r\n") + 4)
    const failing = (status: string) =>
      decode(
        withBody(
          gemini,
          `${first}data: {"error": {"code": 500, "message": "boom", "status": "${status}"}}\r\n\r\n`,
        ),
      )
    expect(failing("INTERNAL").error).toMatchObject({ _tag: "StreamFailed", message: "boom" })
    expect(failing("UNAVAILABLE").error?._tag).toBe("Overloaded")
    expect(failing("RESOURCE_EXHAUSTED").error?._tag).toBe("RateLimited")
    expect(failing("INTERNAL").text).toBe("The")
  })

  it("maps an OpenRouter error chunk with an overload or rate-limit code to that error", () => {
    const openrouter = loadTranscript("openrouter-stream-error")
    const body = new TextDecoder().decode(openrouter.body)
    expect(decode(withBody(openrouter, body.replace('"code":400', '"code":429'))).error?._tag).toBe(
      "RateLimited",
    )
    expect(decode(withBody(openrouter, body.replace('"code":400', '"code":503'))).error?._tag).toBe(
      "Overloaded",
    )
  })

  it("fails on data that is not JSON", () => {
    const outcome = decode(withBody(openai, "data: {not json\n\n"))
    expect(outcome.error).toMatchObject({
      _tag: "StreamFailed",
      message: expect.stringMatching(/^unparseable/),
    })
  })
})
