import type { Duplex } from "node:stream"

/**
 * Node's answer to a request it could not parse (headers over `maxHeaderSize`, bytes that are not
 * HTTP, a request that took too long) is a bare status line. This one says the same in a JSON
 * error body. There is no request object yet, hence no route: the body carries both shapes' fields
 * (DAC's `code` and `message`, OpenAI's `type` and `param`) so either kind of client can read it.
 */
export const onClientError = (maxHeaderBytes: number) => (error: NodeJS.ErrnoException, socket: Duplex) => {
  // A request on this connection is still being answered (the bad bytes came pipelined after
  // it): let that answer finish rather than write a second reply into or before it, then close.
  // `_httpMessage` is Node's own link from the socket to its current response.
  const current = (socket as Duplex & { _httpMessage?: NodeJS.EventEmitter })._httpMessage
  if (current !== undefined && current !== null) {
    current.once("close", () => socket.destroy())
    return
  }
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy()
    return
  }
  const [status, reason, code, message] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [
          431,
          "Request Header Fields Too Large",
          "headers_too_large",
          `the request line and headers are over ${maxHeaderBytes} bytes (MAX_HEADER_BYTES)`,
        ]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "request_timeout", "the request took too long to arrive"]
        : [400, "Bad Request", "bad_request", "the request is not valid HTTP"]
  const body = JSON.stringify({ error: { code, message, type: "invalid_request_error", param: null } })
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
}
