import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The recorded provider exchanges in ../shared/wire (see its SOURCES.md): each file is an HTTP/1.1
 * status line and headers (CRLF), a blank line, then the body bytes exactly as sent.
 */
export interface Transcript {
  readonly name: string
  readonly status: number
  /** The reason phrase; may be empty (`HTTP/1.1 529 `). */
  readonly statusText: string
  /** In file order, repeats kept, names lower-cased. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body: Uint8Array
}

/**
 * The transcripts travel with the repository (test/fixtures/wire, a copy of ../shared/wire, which
 * a test keeps identical) so that a clone alone passes its tests. `DAC_WIRE_DIR` overrides.
 */
export const wireDir: string =
  process.env.DAC_WIRE_DIR ?? fileURLToPath(new URL("../fixtures/wire/", import.meta.url))

/** The shared originals, where a checkout has them beside it. */
export const sharedWireDir: string = fileURLToPath(new URL("../../../shared/wire/", import.meta.url))

/** Every transcript's name (file name without `.txt`), sorted. */
export const transcriptNames = (): ReadonlyArray<string> =>
  readdirSync(wireDir)
    .filter((file) => file.endsWith(".txt"))
    .map((file) => file.slice(0, -4))
    .sort()

const headEnd = Buffer.from("\r\n\r\n")

export const parseTranscript = (name: string, bytes: Uint8Array): Transcript => {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const split = buffer.indexOf(headEnd)
  if (split < 0) throw new Error(`${name}: no blank line after the headers`)
  const [statusLine = "", ...headerLines] = buffer.subarray(0, split).toString("latin1").split("\r\n")
  const status = /^HTTP\/\d(?:\.\d)? (\d{3}) ?(.*)$/.exec(statusLine)
  if (!status) throw new Error(`${name}: bad status line ${JSON.stringify(statusLine)}`)
  const headers = headerLines.map((line) => {
    const colon = line.indexOf(":")
    if (colon < 0) throw new Error(`${name}: bad header line ${JSON.stringify(line)}`)
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as const
  })
  return {
    name,
    status: Number(status[1]),
    statusText: status[2] ?? "",
    headers,
    body: new Uint8Array(buffer.subarray(split + headEnd.length)),
  }
}

const cache = new Map<string, Transcript>()

/** Reads `name` (with or without `.txt`) from the wire directory, once. */
export const loadTranscript = (name: string): Transcript => {
  const key = name.replace(/\.txt$/, "")
  let transcript = cache.get(key)
  if (transcript === undefined) {
    transcript = parseTranscript(key, readFileSync(join(wireDir, `${key}.txt`)))
    cache.set(key, transcript)
  }
  return transcript
}

/** The first value of a header, if present. */
export const headerOf = (transcript: Transcript, name: string): string | undefined =>
  transcript.headers.find(([key]) => key === name.toLowerCase())?.[1]

/** A 2xx `text/event-stream` reply, as opposed to an error or a whole JSON document. */
export const isEventStream = (transcript: Transcript): boolean =>
  transcript.status === 200 && (headerOf(transcript, "content-type") ?? "").startsWith("text/event-stream")

/** The same exchange with another body: for synthetic variants (CRLF framing, multi-byte text). */
export const withBody = (transcript: Transcript, body: string | Uint8Array, name?: string): Transcript => ({
  ...transcript,
  name: name ?? `${transcript.name} (variant)`,
  body: typeof body === "string" ? new TextEncoder().encode(body) : body,
})

export const bodyText = (transcript: Transcript): string => new TextDecoder().decode(transcript.body)
