import type { Duplex } from "node:stream"

/**
 * Node's answer to a request it could not parse (headers over `maxHeaderSize`, bytes that are not
 * HTTP, a request that took too long) is a bare status line. This one says the same in a JSON
 * error body. There is no request object yet, hence no route: the body carries both shapes' fields
 * (DAC's `code` and `message`, OpenAI's `type` and `param`) so either kind of client can read it.
 */
export const onClientError = (maxHeaderBytes: number) => (error: NodeJS.ErrnoException, socket: Duplex) => {
  // Node's own rule: answer only a socket that can still carry a whole response of its own.
  const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (error.code === "ECONNRESET" || !socket.writable || current?.headersSent === true) {
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
