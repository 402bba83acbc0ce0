import {
  bodyText,
  isEventStream,
  loadTranscript,
  type Transcript,
  transcriptNames,
  withBody,
} from "../support/wire.ts"

/** Every 200 `text/event-stream` transcript in ../shared/wire, error streams included. */
export const streamedTranscripts = (): ReadonlyArray<Transcript> =>
  transcriptNames().map(loadTranscript).filter(isEventStream)

/**
 * The same stream with multi-byte characters (2- and 4-byte UTF-8) at the start of every text
 * field, so that random cuts land inside UTF-8 sequences. The recorded bodies are pure ASCII.
 */
export const utf8Variant = (transcript: Transcript): Transcript =>
  withBody(
    transcript,
    bodyText(transcript).replace(/("(?:text|content)": ?")/g, "$1ü🌍"),
    `${transcript.name} (UTF-8)`,
  )

/** The same stream framed the other way: LF where it had CRLF, CRLF where it had LF. */
export const otherFramingVariant = (transcript: Transcript): Transcript => {
  const text = bodyText(transcript)
  const swapped = text.includes("\r\n") ? text.replace(/\r\n/g, "\n") : text.replace(/\n/g, "\r\n")
  return withBody(transcript, swapped, `${transcript.name} (${text.includes("\r\n") ? "LF" : "CRLF"})`)
}
