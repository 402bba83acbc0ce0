import { html } from "htm/preact"
import { render } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"
import {
  ApiError,
  type Auth,
  describeError,
  json,
  type StoredMessage,
  type ThreadSummary,
  type WebConfig,
} from "./api.ts"
import { emptyReply, isTerminal, type Reply, type ReplyStatus } from "./reply.ts"
import { type ReplyRun, type ReplySource, streamReply } from "./reply-stream.ts"

const keyStorage = "dac.apiKey"

type Item =
  | { readonly kind: "user"; readonly id: string; readonly text: string }
  | { readonly kind: "assistant"; readonly id: string; readonly reply: Reply; readonly retry: string | null }

const storedStatus = (status: string): ReplyStatus =>
  status === "complete" || status === "cancelled" || status === "failed"
    ? status
    : status === "interrupted"
      ? "failed"
      : "streaming"

const fromStored = (message: StoredMessage): Item =>
  message.role === "assistant"
    ? {
        kind: "assistant",
        id: message.message_id,
        retry: null,
        reply: {
          ...emptyReply,
          requestId: message.request_id,
          provider: message.provider,
          model: message.model,
          text: message.content,
          status: storedStatus(message.status),
          error:
            message.error_code !== null || message.status === "interrupted"
              ? {
                  code: message.error_code ?? "interrupted",
                  message:
                    message.status === "interrupted" ? "the gateway stopped mid-reply" : "the reply failed",
                  retryable: false,
                }
              : null,
        },
      }
    : { kind: "user", id: message.message_id, text: message.content }

const statusWords: Record<ReplyStatus, string> = {
  waiting: "waiting",
  streaming: "streaming",
  complete: "complete",
  cancelled: "cancelled",
  failed: "failed",
}

const coalesceWords: Record<string, string> = {
  leader: "leader",
  follower: "follower",
  cache_hit: "cache hit",
  bypass: "not coalesced",
}

const ms = (value: number | null) => (value === null ? "–" : `${Math.round(value)} ms`)

const SignIn = ({ error, onKey }: { error: string | null; onKey: (key: string) => void }) => {
  const [key, setKey] = useState("")
  return html`<main class="signin">
    <h1>DAC chat</h1>
    <form
      onSubmit=${(event: Event) => {
        event.preventDefault()
        if (key.trim() !== "") onKey(key.trim())
      }}
    >
      <label for="api-key">API key</label>
      <input
        id="api-key"
        type="password"
        autocomplete="off"
        spellcheck=${false}
        placeholder="dac_…"
        value=${key}
        onInput=${(event: Event) => setKey((event.target as HTMLInputElement).value)}
        aria-describedby="key-help"
        required
        autofocus
      />
      <p id="key-help" class="help">
        A key issued by the gateway's admin API or <code>npm run keys</code>. It is kept in this browser only.
      </p>
      ${error === null ? null : html`<p class="error" role="alert">${error}</p>`}
      <button type="submit">Sign in</button>
    </form>
  </main>`
}

const MessageView = ({ item, onRetry }: { item: Item; onRetry: (text: string) => void }) => {
  if (item.kind === "user") {
    return html`<li class="message user">
      <p class="who">You</p>
      <p class="text">${item.text}</p>
    </li>`
  }
  const reply = item.reply
  const facts = [
    statusWords[reply.status],
    reply.provider !== null ? `${reply.provider}/${reply.model ?? ""}` : null,
    reply.ttftMs !== null ? `TTFT ${ms(reply.ttftMs)}` : null,
    reply.latencyMs !== null ? `latency ${ms(reply.latencyMs)}` : null,
    reply.coalesce !== null ? (coalesceWords[reply.coalesce] ?? reply.coalesce) : null,
  ].filter((fact) => fact !== null)
  return html`<li
    class=${`message assistant ${reply.status}`}
    data-status=${reply.status}
    data-request-id=${reply.requestId ?? undefined}
    aria-busy=${isTerminal(reply.status) ? "false" : "true"}
  >
    <p class="who">Assistant</p>
    <p class="text">${reply.text === "" && !isTerminal(reply.status) ? "…" : reply.text}</p>
    <p class="facts">${facts.join(" · ")}</p>
    ${
      reply.error === null
        ? null
        : html`<p class="error">Error: ${reply.error.message} (${reply.error.code}).</p>`
    }
    ${
      item.retry !== null && reply.status === "failed"
        ? html`<button type="button" class="secondary" onClick=${() => onRetry(item.retry!)}>Retry</button>`
        : null
    }
  </li>`
}

const Chat = ({
  auth,
  config,
  onSignOut,
}: {
  auth: Auth
  config: WebConfig
  onSignOut: (error?: string) => void
}) => {
  const [threads, setThreads] = useState<ReadonlyArray<ThreadSummary>>([])
  const [threadId, setThreadId] = useState<string | null>(null)
  const [items, setItems] = useState<ReadonlyArray<Item>>([])
  const [provider, setProvider] = useState(config.providers[0]?.name ?? "mock")
  const [model, setModel] = useState(config.providers[0]?.models[0] ?? "")
  const [draft, setDraft] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [note, setNote] = useState("")
  const [running, setRunning] = useState<ReplyRun | null>(null)
  const composer = useRef<HTMLTextAreaElement>(null)

  const handle = (caught: unknown) => {
    if (caught instanceof ApiError && caught.code === "invalid_api_key" && auth.mode === "keys") {
      onSignOut(describeError(caught))
      return
    }
    setError(describeError(caught))
  }

  const loadThreads = () =>
    json<{ threads: ReadonlyArray<ThreadSummary> }>(auth, "GET", "/api/threads?limit=100")
      .then((body) => setThreads(body.threads))
      .catch(handle)

  useEffect(() => {
    void loadThreads()
  }, [])

  /** Follows a reply into the item `replyKey`: a message sent, or a reply re-joined. */
  const follow = async (
    id: string,
    replyKey: string,
    source: ReplySource,
    onRefused: () => void = () => {},
    retryText: string | null = null,
  ) => {
    let lastNote = ""
    const setReply = (reply: Reply, retry: string | null = null) =>
      setItems((list) =>
        list.map((item) =>
          item.id === replyKey && item.kind === "assistant" ? { ...item, reply, retry } : item,
        ),
      )
    const run = streamReply(auth, id, source, {
      onUpdate: (reply) => setReply(reply),
      onNote: (line) => {
        lastNote = line
        setNote(line)
      },
    })
    setRunning(run)
    try {
      const reply = await run.done
      setReply(reply, reply.status === "failed" ? retryText : null)
      setNote(`Reply ${statusWords[reply.status]}.${lastNote === "" ? "" : ` ${lastNote}`}`)
    } catch (caught) {
      if (caught instanceof DOMException && caught.name === "AbortError") {
        setReply({ ...emptyReply, status: "cancelled" })
      } else {
        onRefused()
        handle(caught)
      }
    } finally {
      setRunning(null)
    }
  }

  const openThread = async (id: string) => {
    setError(null)
    try {
      const thread = await json<{ messages: ReadonlyArray<StoredMessage> }>(
        auth,
        "GET",
        `/api/threads/${encodeURIComponent(id)}`,
      )
      setThreadId(id)
      const list = thread.messages.filter((m) => m.role !== "system").map(fromStored)
      setItems(list)
      composer.current?.focus()
      // A reply still running (the page was reloaded mid-reply): follow it from its start.
      const last = list.at(-1)
      if (last?.kind === "assistant" && last.reply.status === "streaming" && last.reply.requestId !== null) {
        await follow(id, last.id, { join: last.reply.requestId })
      }
    } catch (caught) {
      handle(caught)
    }
  }

  const newThread = () => {
    setThreadId(null)
    setItems([])
    setError(null)
    setNote("")
    composer.current?.focus()
  }

  const send = async (text: string) => {
    if (text.trim() === "" || running !== null) return
    setError(null)
    setNote("")
    let id = threadId
    try {
      if (id === null) {
        const created = await json<ThreadSummary>(auth, "POST", "/api/threads", { title: text.slice(0, 80) })
        id = created.thread_id
        setThreadId(id)
        void loadThreads()
      }
    } catch (caught) {
      handle(caught)
      return
    }
    const key = `${Date.now()}`
    const replyKey = `reply-${key}`
    setItems((list) => [
      ...list,
      { kind: "user", id: `user-${key}`, text },
      { kind: "assistant", id: replyKey, reply: emptyReply, retry: null },
    ])
    setDraft("")
    await follow(
      id,
      replyKey,
      { send: { role: "user", content: text, provider, model } },
      () => {
        setItems((list) => list.filter((item) => item.id !== replyKey && item.id !== `user-${key}`))
        setDraft(text)
      },
      text,
    )
  }

  const models = config.providers.find((p) => p.name === provider)?.models ?? []
  const current = threads.find((t) => t.thread_id === threadId)

  return html`<div class="layout">
    <header class="top">
      <h1>DAC chat</h1>
      ${
        auth.mode === "keys"
          ? html`<button type="button" class="secondary" onClick=${() => onSignOut()}>Sign out</button>`
          : null
      }
    </header>
    <nav class="threads" aria-label="Threads">
      <button type="button" onClick=${newThread}>New thread</button>
      <h2 id="threads-heading">Threads</h2>
      ${
        threads.length === 0
          ? html`<p class="help">No threads yet.</p>`
          : html`<ul aria-labelledby="threads-heading">
              ${threads.map(
                (thread) => html`<li key=${thread.thread_id}>
                  <button
                    type="button"
                    class="thread"
                    aria-current=${thread.thread_id === threadId ? "true" : undefined}
                    onClick=${() => openThread(thread.thread_id)}
                  >
                    <span>${thread.title ?? "Untitled"}</span>
                    <time datetime=${thread.created_at}>${new Date(thread.created_at).toLocaleString()}</time>
                  </button>
                </li>`,
              )}
            </ul>`
      }
    </nav>
    <main class="chat">
      <h2>${current?.title ?? (threadId === null ? "New thread" : "Thread")}</h2>
      ${error === null ? null : html`<p class="error" role="alert">${error}</p>`}
      <ol class="messages" aria-label="Conversation">
        ${items.map((item) => html`<${MessageView} key=${item.id} item=${item} onRetry=${send} />`)}
      </ol>
      <p class="note" role="status" aria-live="polite">${note}</p>
      <form
        class="composer"
        onSubmit=${(event: Event) => {
          event.preventDefault()
          void send(draft)
        }}
      >
        <div class="pickers">
          <label>
            Provider
            <select
              value=${provider}
              onChange=${(event: Event) => {
                const name = (event.target as HTMLSelectElement).value
                setProvider(name)
                setModel(config.providers.find((p) => p.name === name)?.models[0] ?? "")
              }}
            >
              ${config.providers.map((p) => html`<option value=${p.name}>${p.name}</option>`)}
            </select>
          </label>
          <label>
            Model
            <input
              list="models"
              value=${model}
              required
              onInput=${(event: Event) => setModel((event.target as HTMLInputElement).value)}
            />
            <datalist id="models">${models.map((m) => html`<option value=${m}></option>`)}</datalist>
          </label>
        </div>
        <label for="message">Message</label>
        <textarea
          id="message"
          ref=${composer}
          rows="3"
          value=${draft}
          onInput=${(event: Event) => setDraft((event.target as HTMLTextAreaElement).value)}
          onKeyDown=${(event: KeyboardEvent) => {
            if (event.key === "Enter" && !event.shiftKey) {
              event.preventDefault()
              void send(draft)
            }
          }}
          aria-describedby="message-help"
        ></textarea>
        <p id="message-help" class="help">Enter sends; Shift+Enter starts a new line.</p>
        <div class="actions">
          <button type="submit" disabled=${running !== null}>Send</button>
          <button type="button" class="stop" disabled=${running === null} onClick=${() => running?.stop()}>
            Stop
          </button>
        </div>
      </form>
    </main>
  </div>`
}

const App = () => {
  const [config, setConfig] = useState<WebConfig | null>(null)
  const [key, setKey] = useState<string | null>(() => localStorage.getItem(keyStorage))
  const [error, setError] = useState<string | null>(null)

  useEffect(() => {
    fetch("/web/config")
      .then(async (response) => {
        if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, "no configuration")
        setConfig((await response.json()) as WebConfig)
      })
      .catch((caught) =>
        setError(describeError(caught instanceof ApiError ? caught : new ApiError(0, "network", ""))),
      )
  }, [])

  if (config === null) {
    return html`<main class="signin">
      <h1>DAC chat</h1>
      ${error === null ? html`<p role="status">Loading…</p>` : html`<p class="error" role="alert">${error}</p>`}
    </main>`
  }
  if (config.auth_mode === "keys" && key === null) {
    return html`<${SignIn}
      error=${error}
      onKey=${(value: string) => {
        localStorage.setItem(keyStorage, value)
        setError(null)
        setKey(value)
      }}
    />`
  }
  return html`<${Chat}
    auth=${{ mode: config.auth_mode, key }}
    config=${config}
    onSignOut=${(reason?: string) => {
      localStorage.removeItem(keyStorage)
      setError(reason ?? null)
      setKey(null)
    }}
  />`
}

render(html`<${App} />`, document.getElementById("app")!)
