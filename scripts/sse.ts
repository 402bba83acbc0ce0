import { createParser } from "eventsource-parser"

export interface StreamedEvent {
  readonly event: string
  readonly data: Record<string, unknown>
  /** `performance.now()` when the event was parsed. */
  readonly at: number
}

/** Posts a streamed turn and reads its events as they arrive; `cancel` uses the request id from `meta`. */
export const streamTurn = async (url: string, headers: Record<string, string>, body: unknown) => {
  const startedAt = performance.now()
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) })
  const events: Array<StreamedEvent> = []
  const waiters: Array<() => void> = []
  const parser = createParser({
    onEvent: (message) => {
      events.push({
        event: message.event ?? "message",
        data: JSON.parse(message.data),
        at: performance.now(),
      })
      for (const wake of waiters.splice(0)) wake()
    },
  })
  const done = (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      parser.feed(decoder.decode(chunk, { stream: true }))
    }
    for (const wake of waiters.splice(0)) wake()
  })()
  const waitFor = async (predicate: (event: StreamedEvent) => boolean) => {
    for (;;) {
      const found = events.find(predicate)
      if (found) return found
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
  return { response, startedAt, events, done, waitFor }
}
