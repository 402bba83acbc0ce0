import { connect } from "node:net"

/**
 * HTTP/1.1 over a bare socket: header bytes that `fetch` and `node:http` refuse to send (NUL,
 * non-Latin-1, odd lengths) and bodies that are not what their content type says.
 */

export interface RawRequest {
  readonly method: string
  readonly path: string
  /** Written as UTF-8 bytes, as they come. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body?: string | undefined
}

export interface RawAnswer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** From the first byte written to the status line received. */
  readonly ms: number
}

const decodeChunked = (raw: Buffer): Buffer => {
  const parts: Array<Buffer> = []
  let at = 0
  while (at < raw.length) {
    const lineEnd = raw.indexOf("\r\n", at)
    if (lineEnd < 0) break
    const size = Number.parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16)
    if (!Number.isFinite(size) || size === 0) break
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}

/**
 * Sends one request on its own connection (`connection: close`) and reads the answer: the whole
 * body, or only the head of an event stream (whose body may go on: the socket is then closed,
 * as a client hanging up). Undefined when no status line came within `timeoutMs`.
 */
export const rawRequest = (
  port: number,
  request: RawRequest,
  timeoutMs = 5_000,
): Promise<RawAnswer | undefined> =>
  new Promise((resolve) => {
    const started = performance.now()
    let ms = -1
    const chunks: Array<Buffer> = []
    let settled = false
    const socket = connect(port, "127.0.0.1")
    const finish = (answer: RawAnswer | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    const parse = (): RawAnswer | undefined => {
      const raw = Buffer.concat(chunks)
      const headEnd = raw.indexOf("\r\n\r\n")
      if (headEnd < 0) return undefined
      const [statusLine = "", ...lines] = raw.subarray(0, headEnd).toString("latin1").split("\r\n")
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(":")
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const rest = raw.subarray(headEnd + 4)
      const body = headers["transfer-encoding"]?.includes("chunked") ? decodeChunked(rest) : rest
      return { status: Number(statusLine.split(" ")[1]), headers, body: body.toString("utf8"), ms }
    }
    // A body that is still coming after the status line gets this long more, then is cut.
    const timer = setTimeout(() => finish(ms < 0 ? undefined : parse()), timeoutMs)
    socket.on("data", (chunk: Buffer) => {
      if (ms < 0) ms = performance.now() - started
      chunks.push(chunk)
      const head = parse()
      if (head?.headers["content-type"]?.startsWith("text/event-stream") && head.status < 300) finish(head)
    })
    socket.on("error", () => finish(ms < 0 ? undefined : parse()))
    socket.on("close", () => finish(ms < 0 ? undefined : parse()))
    socket.on("connect", () => {
      const body = request.body === undefined ? undefined : Buffer.from(request.body, "utf8")
      const names = new Set(request.headers.map(([name]) => name.toLowerCase()))
      let head = `${request.method} ${request.path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n`
      for (const [name, value] of request.headers) head += `${name}: ${value}\r\n`
      if (body !== undefined && !names.has("content-length") && !names.has("transfer-encoding")) {
        head += `content-length: ${body.length}\r\n`
      }
      socket.write(Buffer.concat([Buffer.from(`${head}\r\n`, "utf8"), body ?? Buffer.alloc(0)]))
    })
  })
