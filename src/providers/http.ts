import { Effect, Option, Redacted } from "effect"
import { type Dispatcher, Pool } from "undici"
import type { ProviderName, ProviderSettings, UpstreamTimeouts } from "../config.ts"
import { type ProviderError, Timeout } from "../domain/provider-errors.ts"
import { withPerCallSpan } from "../telemetry/spans.ts"
import {
  errorFromResponse,
  errorFromTransport,
  exhaustedResetMs,
  type ResponseHeaders,
} from "./http-errors.ts"
import {
  type EventListener,
  FirstByte,
  makeAdapter,
  type ProviderEvent,
  type ProviderRequest,
  rateLimitHint,
} from "./provider.ts"
import { retryBeforeFirstByte } from "./retry.ts"

/**
 * One pooled keep-alive HTTP client per provider origin, and the bridge from a streamed response
 * body to provider events.
 *
 * The bridge works in undici's own callbacks: the first body chunk emits FirstByte before anything
 * parses it, each chunk goes straight to the adapter's decoder and its events straight to the
 * listener (no queue, no fiber hop per token), and one Node timer (refreshed per chunk that made
 * progress, no allocation) enforces the first-byte and idle timeouts. Ending the call early (the caller is
 * interrupted, a decoder fails, a timeout fires) aborts the request, which closes the socket of a
 * response that was still streaming.
 */

/** Where a decoder sends what it found; calls after the stream settled are ignored. */
export interface EventSink {
  readonly emit: (event: ProviderEvent) => void
  readonly fail: (error: ProviderError) => void
}

/**
 * Turns the body of a 2xx response into events. `onEnd` must emit the `Finish` event or fail:
 * a body that ends without its finish is a truncated reply.
 */
export interface BodyDecoder {
  /**
   * Reads one chunk; true when it made progress (an SSE event or a JSON body's bytes), false when
   * it only carried what makes no event (`: keepalive` comments, a partial line): the idle timeout
   * counts from the last progress, so a provider that only sends keepalives times out.
   */
  readonly onBytes: (bytes: Uint8Array) => boolean
  readonly onEnd: () => void
}

export type MakeDecoder = (sink: EventSink, contentType: string) => BodyDecoder

export interface UpstreamClientOptions {
  readonly provider: ProviderName
  /** Origin plus path prefix, without trailing slash: request paths are appended to it. */
  readonly baseUrl: string
  readonly timeouts: UpstreamTimeouts
  /** Sent with every request: authentication, API version. */
  readonly headers: Readonly<Record<string, string>>
  /** The API key, cut out of any error message in case the provider echoes it. */
  readonly secret: string
  /** Most sockets the pool opens to the origin (HTTP/1.1); HTTP/2 multiplexes over one. */
  readonly connections: number
}

export interface UpstreamClient {
  /**
   * POSTs `body` as JSON to `path` (below the base URL) and hands each decoded event to `onEvent`
   * in undici's own callback. Lazy: each run sends one request; interrupting it aborts the request.
   */
  readonly run: (
    path: string,
    body: unknown,
    decoder: MakeDecoder,
    onEvent: EventListener,
  ) => Effect.Effect<void, ProviderError>
}

/** Why DAC cut a request off itself (interrupted, timed out, bad data): not an upstream failure. */
const abortReason = new Error("aborted by the gateway")

/** An error body longer than this is cut: only its message matters. */
const maxErrorBodyBytes = 64 * 1024

const contentTypeOf = (headers: ResponseHeaders) => {
  const value = headers["content-type"]
  return (typeof value === "string" ? value : (value?.[0] ?? "")).toLowerCase()
}

export const makeUpstreamClient = Effect.fn("UpstreamClient.make")(function* (
  options: UpstreamClientOptions,
) {
  const { provider, timeouts, secret } = options
  const base = new URL(options.baseUrl)
  const basePath = base.pathname.replace(/\/+$/, "")
  const pool = yield* Effect.acquireRelease(
    Effect.sync(
      () =>
        new Pool(base.origin, {
          connections: options.connections,
          allowH2: true,
          connectTimeout: timeouts.connectMs,
          // The bridge times the first byte and the gaps itself, per phase; undici's timers would race it.
          headersTimeout: 0,
          bodyTimeout: 0,
          keepAliveTimeout: 30_000,
        }),
    ),
    // Closing the scope means shutting down: nothing the pool still carries is worth waiting for.
    (pool) => Effect.promise(() => pool.destroy()),
  )

  // Open a connection (and TLS, and HTTP/2 if offered) before the first real request needs it.
  yield* Effect.forkScoped(
    Effect.promise(() =>
      pool
        .request({ method: "HEAD", path: basePath || "/", headersTimeout: timeouts.firstByteMs })
        .then(({ body }) => body.dump())
        .catch(() => undefined),
    ),
  )

  const headers = {
    ...options.headers,
    "content-type": "application/json",
    accept: "text/event-stream, application/json",
    "accept-encoding": "identity",
  }

  const run = (path: string, body: unknown, makeDecoder: MakeDecoder, onEvent: EventListener) =>
    Effect.callback<void, ProviderError>((resume) => {
      // undici's dispatcher callbacks, not `request()`: no Readable, promise or AbortSignal per
      // call, and each body chunk reaches the decoder in the socket's own read callback.
      let controller: Dispatcher.DispatchController | undefined
      let cancelled = false
      let settled = false
      let completed = false
      let firstByte = false
      let decoder: BodyDecoder | undefined
      let pauseMs: number | undefined
      let status = 0
      let responseHeaders: ResponseHeaders = {}
      let errorParts: Array<Buffer> | undefined
      let errorSize = 0

      const cutOff = () => {
        if (!completed && controller !== undefined && !controller.aborted) controller.abort(abortReason)
      }
      const settle = () => {
        settled = true
        clearTimeout(timer)
      }
      const sink: EventSink = {
        emit: (event) => {
          if (!settled) onEvent(event)
        },
        fail: (error) => {
          if (settled) return
          settle()
          // A response cut short (timeout, bad data) takes its socket with it.
          cutOff()
          resume(Effect.fail(error))
        },
      }
      const onTimeout = () =>
        sink.fail(
          firstByte
            ? new Timeout({
                provider,
                phase: "idle",
                message: `no event from ${provider} for ${timeouts.idleMs} ms`,
              })
            : new Timeout({
                provider,
                phase: "first_byte",
                message: `no response from ${provider} within ${timeouts.firstByteMs} ms`,
              }),
        )
      let timer = setTimeout(onTimeout, timeouts.firstByteMs)

      pool.dispatch(
        { method: "POST", path: basePath + path, headers, body: JSON.stringify(body) },
        {
          onRequestStart: (c) => {
            controller = c
            if (cancelled || settled) c.abort(abortReason)
          },
          onResponseStart: (_c, statusCode, answerHeaders) => {
            status = statusCode
            responseHeaders = answerHeaders as ResponseHeaders
            if (statusCode < 200 || statusCode >= 300) {
              errorParts = []
              return
            }
            decoder = makeDecoder(sink, contentTypeOf(responseHeaders))
            pauseMs = exhaustedResetMs(responseHeaders, Date.now())
          },
          onResponseData: (_c, chunk) => {
            if (settled) return
            if (errorParts !== undefined) {
              if (errorSize < maxErrorBodyBytes) errorParts.push(chunk)
              errorSize += chunk.length
              return
            }
            if (!firstByte) {
              firstByte = true
              onEvent(FirstByte)
              if (pauseMs !== undefined) onEvent(rateLimitHint(pauseMs))
              // From here on the timer measures the gaps between chunks that decode to something.
              clearTimeout(timer)
              timer = setTimeout(onTimeout, timeouts.idleMs)
            }
            // Only a chunk that made an event moves the idle deadline: keepalive comments alone do not.
            if (decoder!.onBytes(chunk) && !settled) timer.refresh()
          },
          onResponseEnd: () => {
            completed = true
            if (settled) return
            if (errorParts !== undefined) {
              const text = Buffer.concat(errorParts).subarray(0, maxErrorBodyBytes).toString("utf8")
              return sink.fail(errorFromResponse(provider, status, responseHeaders, text, secret, Date.now()))
            }
            decoder!.onEnd()
            if (settled) return
            settle()
            // undici gives the socket back in an Immediate it queues when this callback returns.
            // A microtask runs after that and queues ours behind it, in the same check phase:
            // a call made at once then reuses the socket, and the reply waits for no extra turn
            // of the event loop (two nested Immediates did, one whole loaded turn).
            queueMicrotask(() => setImmediate(() => resume(Effect.void)))
          },
          onResponseError: (_c, error) => {
            if (error !== abortReason) sink.fail(errorFromTransport(provider, error, firstByte))
          },
        },
      )

      // Interrupted: a finished response leaves its socket in the pool; anything else is cut off.
      return Effect.sync(() => {
        cancelled = true
        settle()
        cutOff()
      })
    })

  return { run } satisfies UpstreamClient
})

/** What makes one wire protocol: its auth headers, where and what it POSTs, how it reads the reply. */
export interface HttpAdapterSpec {
  /** Names the spans: `{span}.make`, `{span}.stream`. */
  readonly span: string
  readonly headers: (apiKey: string) => Readonly<Record<string, string>>
  readonly request: (
    request: ProviderRequest,
    provider: ProviderName,
  ) => { readonly path: string; readonly body: unknown }
  /** `secret` is the API key, to cut out of error messages. */
  readonly decoder: (provider: ProviderName, secret: string) => MakeDecoder
}

/** A RemoteAdapterFactory for one wire protocol: a pooled client, retries before the first byte, a span per call. */
export const makeHttpAdapter = (spec: HttpAdapterSpec) =>
  Effect.fn(`${spec.span}.make`)(function* (settings: ProviderSettings, timeouts: UpstreamTimeouts) {
    const provider = settings.name
    const secret = Option.match(settings.apiKey, { onNone: () => "", onSome: Redacted.value })
    const client = yield* makeUpstreamClient({
      provider,
      baseUrl: settings.baseUrl,
      timeouts,
      headers: spec.headers(secret),
      secret,
      connections: settings.concurrency,
    })
    const decoder = spec.decoder(provider, secret)

    const run = (request: ProviderRequest, onEvent: EventListener) => {
      const { path, body } = spec.request(request, provider)
      return retryBeforeFirstByte(
        (listener) => client.run(path, body, decoder, listener),
        onEvent,
        timeouts,
      ).pipe(withPerCallSpan(`${spec.span}.stream`, { provider, model: request.model }))
    }
    return makeAdapter(provider, run)
  })
