import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { makeSseDecoder } from "../../src/providers/sse.ts"
import { splitAt } from "./harness.ts"
import { otherFramingVariant, streamedTranscripts, utf8Variant } from "./variants.ts"

type Parsed = { readonly event: string; readonly data: string }

const parse = (chunks: ReadonlyArray<Uint8Array>): ReadonlyArray<Parsed> => {
  const events: Array<Parsed> = []
  const decoder = makeSseDecoder((event, data) => events.push({ event, data }))
  for (const chunk of chunks) expect(decoder.push(chunk)).toBeUndefined()
  expect(decoder.end()).toBeUndefined()
  return events
}

const bytes = (text: string) => new TextEncoder().encode(text)
const parseText = (text: string) => parse([bytes(text)])

describe("SSE decoder", () => {
  it("reads LF, CRLF and CR framing alike", () => {
    const expected = [
      { event: "message", data: "a" },
      { event: "delta", data: "b" },
    ]
    expect(parseText("data: a\n\nevent: delta\ndata: b\n\n")).toEqual(expected)
    expect(parseText("data: a\r\n\r\nevent: delta\r\ndata: b\r\n\r\n")).toEqual(expected)
    expect(parseText("data: a\r\revent: delta\rdata: b\r\r")).toEqual(expected)
  })

  it("joins multi-line data with LF and drops one leading space only", () => {
    expect(parseText('data: {"a":\ndata:  1}\n\n')).toEqual([{ event: "message", data: '{"a":\n 1}' }])
  })

  it("skips comment keepalives and events without data", () => {
    expect(
      parseText(": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: x\n\nevent: ping\n\n"),
    ).toEqual([{ event: "message", data: "x" }])
  })

  it("ignores retry: and id: fields instead of failing", () => {
    expect(parseText("retry: 3000\nid: 7\ndata: x\n\n")).toEqual([{ event: "message", data: "x" }])
  })

  it("delivers a last event whose blank line never came, at the end of the body", () => {
    expect(parseText("data: 1\n\ndata: [DONE]")).toEqual([
      { event: "message", data: "1" },
      { event: "message", data: "[DONE]" },
    ])
    expect(parseText("data: 1\r\n\r\ndata: 2\r")).toEqual([
      { event: "message", data: "1" },
      { event: "message", data: "2" },
    ])
  })

  it("holds a CRLF split between two reads as one line end", () => {
    expect(parse([bytes("data: a\r"), bytes("\n\r"), bytes("\ndata: b\r\n\r\n")])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b" },
    ])
  })

  it("reassembles a multi-byte character split inside its UTF-8 sequence", () => {
    const whole = bytes("data: 🌍é\n\n")
    // "data: " is 6 bytes; the globe is 4 bytes: cut after each of its first three.
    for (const cut of [7, 8, 9, 11]) {
      expect(parse(splitAt(whole, [cut]))).toEqual([{ event: "message", data: "🌍é" }])
    }
  })

  it("fails an event that grows past the size limit instead of buffering it", () => {
    const decoder = makeSseDecoder(() => undefined, 16)
    expect(decoder.push(bytes(`data: ${"x".repeat(64)}`))).toMatch(/maximum size/)
  })

  describe("every streamed transcript, split anywhere", () => {
    const cases = streamedTranscripts().flatMap((t) => [t, utf8Variant(t), otherFramingVariant(t)])
    for (const transcript of cases) {
      it(transcript.name, () => {
        const whole = parse([transcript.body])
        expect(whole.length).toBeGreaterThan(0)
        fc.assert(
          fc.property(fc.array(fc.nat({ max: transcript.body.length }), { maxLength: 40 }), (cuts) => {
            expect(parse(splitAt(transcript.body, cuts))).toEqual(whole)
          }),
          { numRuns: 150 },
        )
        // And the worst case: one byte per read.
        const single = Array.from({ length: transcript.body.length }, (_, i) => i + 1)
        expect(parse(splitAt(transcript.body, single))).toEqual(whole)
      })
    }
  })
})
