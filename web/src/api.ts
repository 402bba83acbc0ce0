/** How the page authenticates: a key (AUTH_MODE=keys) or nothing (header mode, a front end sets the org). */
export interface Auth {
  readonly mode: "keys" | "header"
  readonly key: string | null
}

export interface WebConfig {
  readonly auth_mode: "keys" | "header"
  readonly providers: ReadonlyArray<{ readonly name: string; readonly models: ReadonlyArray<string> }>
}

export interface ThreadSummary {
  readonly thread_id: string
  readonly title: string | null
  readonly created_at: string
}

export interface StoredMessage {
  readonly message_id: string
  readonly role: "user" | "assistant" | "system"
  readonly content: string
  readonly status: string
  readonly provider: string | null
  readonly model: string | null
  readonly error_code: string | null
  readonly request_id: string | null
}

/** A refusal from the gateway (its `{"error":{code,message}}`), or `network` when it could not be reached. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly retryAfter: string | null
  constructor(status: number, code: string, message: string, retryAfter: string | null = null) {
    super(message)
    this.status = status
    this.code = code
    this.retryAfter = retryAfter
  }
}

export const authHeaders = (auth: Auth): Record<string, string> =>
  auth.mode === "keys" && auth.key !== null ? { authorization: `Bearer ${auth.key}` } : {}

/** The gateway's error body as an ApiError (whatever the body is). */
export const errorOf = async (response: Response): Promise<ApiError> => {
  let code = `http_${response.status}`
  let message = response.statusText || "the gateway refused the request"
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } }
    if (typeof body.error?.code === "string") code = body.error.code
    if (typeof body.error?.message === "string") message = body.error.message
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message, response.headers.get("retry-after"))
}

/** `fetch` that turns a network failure into ApiError `network` (an abort stays an AbortError). */
export const request = async (url: string, init: RequestInit): Promise<Response> => {
  try {
    return await fetch(url, init)
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error
    throw new ApiError(0, "network", "could not reach the gateway")
  }
}

export const json = async <A>(auth: Auth, method: string, url: string, body?: unknown): Promise<A> => {
  const response = await request(url, {
    method,
    headers: {
      ...authHeaders(auth),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? null : JSON.stringify(body),
  })
  if (!response.ok) throw await errorOf(response)
  return (await response.json()) as A
}

/** An error in words a person can act on. */
export const describeError = (error: unknown): string => {
  if (!(error instanceof ApiError)) return `Something went wrong: ${String(error)}`
  switch (error.code) {
    case "network":
      return "Could not reach the gateway. Check the connection, then try again."
    case "invalid_api_key":
      return "The gateway did not accept this key (unknown or revoked). Sign in with another key."
    case "missing_org_id":
    case "invalid_org_id":
      return "The gateway runs in header mode and no organisation was set by the front end (x-org-id)."
    case "rate_limited":
    case "key_rate_limited":
    case "key_concurrency_limited":
    case "key_budget_exhausted":
      return `Too many requests right now: ${error.message}.${error.retryAfter ? ` Try again in ${error.retryAfter} s.` : ""}`
    default:
      return `${error.message} (${error.code}${error.status > 0 ? `, HTTP ${error.status}` : ""}).`
  }
}
