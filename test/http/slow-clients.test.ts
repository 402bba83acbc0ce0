import { connect, Socket } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mockReplyText } from "../../src/providers/mock.ts"
import { type RunningGateway, startGateway } from "../support/gateway.ts"
import { openStream } from "../support/sse-client.ts"

/**
 * Clients that stop reading, on real sockets. A reply long enough to fill what the kernel buffers
 * for a connection (a few MB on loopback): only then does the gateway see that a client takes
 * nothing.
 */
const tokens = 100_000
let gateway: RunningGateway
const org = `org-${crypto.randomUUID()}`

/** The local port of every socket this process destroyed: the gateway's side of a connection. */
const destroyedRemotePorts = new Set<number>()
const originalDestroy = Socket.prototype.destroy

beforeAll(async () => {
  Socket.prototype.destroy = function (this: Socket, error?: Error) {
    if (this.remotePort !== undefined) destroyedRemotePorts.add(this.remotePort)
    return originalDestroy.call(this, error)
  }
  gateway = await startGateway({
    MOCK_TOKENS: String(tokens),
    MOCK_TTFT_MS: "0",
    MOCK_TOKEN_INTERVAL_MS: "0",
    STALLED_WRITE_TIMEOUT_MS: "500",
    RECONNECT_GRACE_MS: "0",
  })
})
afterAll(async () => {
  Socket.prototype.destroy = originalDestroy
  await gateway?.close()
})

const port = () => Number(new URL(gateway.baseUrl).port)

/** A client that sends its request and then reads nothing. */
const neverReading = (path: string) =>
  new Promise<Socket>((resolve) => {
    const socket = connect(port(), "127.0.0.1", () => {
      socket.pause()
      socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-org-id: ${org}\r\n\r\n`)
      resolve(socket)
    })
  })

/** Whether the gateway destroyed its side of `client`'s connection within `ms`. */
const closedByGateway = async (client: Socket, ms: number) => {
  const deadline = performance.now() + ms
  while (!destroyedRemotePorts.has(client.localPort!) && performance.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20))
  return destroyedRemotePorts.has(client.localPort!)
}

const newThread = async () => {
  const response = await fetch(`${gateway.baseUrl}/api/threads`, {
    method: "POST",
    headers: { "x-org-id": org, "content-type": "application/json" },
    body: "{}",
  })
  return ((await response.json()) as { thread_id: string }).thread_id
}

describe("a client that reads nothing", () => {
  it("is ended and its connection closed; the reading listener and the generation go on unslowed", async () => {
    const threadId = await newThread()
    const reader = openStream(`${gateway.baseUrl}/api/threads/${threadId}/messages/stream`, {
      method: "POST",
      headers: { "x-org-id": org, "content-type": "application/json" },
      body: JSON.stringify({
        role: "user",
        content: "a long one",
        provider: "mock",
        model: "faststream-ttft",
      }),
    })
    await reader.until((events) => events.some((e) => e.event === "meta" && e.data.request_id !== undefined))
    const requestId = String(reader.events.find((e) => e.data.request_id !== undefined)!.data.request_id)

    // A second viewer joins live and stops reading.
    const live = await neverReading(`/api/threads/${threadId}/stream/${requestId}`)
    await reader.done
    expect(reader.events.at(-1)!.event).toBe("done")
    expect(reader.text()).toBe(mockReplyText(tokens))
    expect(await closedByGateway(live, 10_000)).toBe(true)
    live.destroy()

    // A re-attach to the finished reply (replayed from its log) that reads nothing: a stalled write.
    const late = await neverReading(`/api/threads/${threadId}/stream/${requestId}`)
    expect(await closedByGateway(late, 10_000)).toBe(true)
    late.destroy()
  }, 60_000)
})
