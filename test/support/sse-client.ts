import { createParser, type EventSourceMessage } from "eventsource-parser"

export interface ParsedEvent {
  readonly id: number
  readonly event: string
  readonly data: Record<string, unknown>
}

/**
 * A streaming request read by a standard SSE parser. `events` fills as bytes arrive; `done`
 * resolves when the server ends the stream (or the request is aborted).
 */
export const openStream = (url: string, init: RequestInit & { headers?: Record<string, string> }) => {
  const controller = new AbortController()
  const events: Array<ParsedEvent> = []
  const comments: Array<string> = []
  let headers: Headers | undefined
  let status = 0
  const waiters: Array<() => void> = []
  const notify = () => {
    for (const waiter of waiters.splice(0)) waiter()
  }
  const parser = createParser({
    onEvent: (message: EventSourceMessage) => {
      events.push({
        id: Number(message.id),
        event: message.event ?? "message",
        data: JSON.parse(message.data),
      })
      notify()
    },
    onComment: (comment) => {
      comments.push(comment)
    },
  })
  const done = (async () => {
    try {
      const response = await fetch(url, { ...init, signal: controller.signal })
      headers = response.headers
      status = response.status
      const decoder = new TextDecoder()
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }))
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error
    } finally {
      notify()
    }
  })()
  const until = async (predicate: (events: ReadonlyArray<ParsedEvent>) => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs
    while (!predicate(events)) {
      if (Date.now() > deadline)
        throw new Error(`timed out; events so far: ${JSON.stringify(events.map((e) => e.event))}`)
      await Promise.race([
        new Promise<void>((resolve) => waiters.push(resolve)),
        new Promise((r) => setTimeout(r, 50)),
      ])
    }
  }
  return {
    events,
    comments,
    done,
    until,
    abort: () => controller.abort(),
    get headers() {
      return headers
    },
    get status() {
      return status
    },
    text: () =>
      events
        .filter((e) => e.event === "delta")
        .map((e) => e.data.text)
        .join(""),
  }
}
