import { html } from "htm/preact"
import { render } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"
import uPlot from "uplot"
import "./dashboard.css"

interface Percentiles {
  readonly p50: number | null
  readonly p95: number | null
  readonly p99: number | null
}
interface Bucket {
  readonly t: number
  readonly count: number
  readonly errors: number
  readonly ttft_ms: Percentiles
  readonly latency_ms: Percentiles
  readonly queue_wait_ms: Percentiles
  readonly leaders: number
  readonly followers: number
  readonly cache_hits: number
  readonly by_provider: Readonly<Record<string, number>>
}
interface Series {
  readonly now: number
  readonly minutes: number
  readonly step_ms: number
  readonly buckets: ReadonlyArray<Bucket>
  readonly total: Bucket
  readonly thresholds: {
    readonly error_rate: number
    readonly ttft_p95_ms: number
    readonly latency_p95_ms: number
    readonly queue_wait_p95_ms: number
    readonly followers_per_leader_min: number
  }
  readonly pacer: ReadonlyArray<{
    readonly provider: string
    readonly tokens: number
    readonly in_flight: number
    readonly queued: number
    readonly concurrency_limit: number
    readonly paused_until: string | null
  }>
}

const tokenStorage = "dac.opsToken"
const refreshMs = 2_000
const colors = ["#0b57d0", "#a4161a", "#1e6b35", "#7b3fa0", "#9a5b00"]

const ms = (v: number | null) =>
  v === null ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`
const pct = (v: number) => `${(v * 100).toFixed(1)} %`

/** What is over the seeds' thresholds in the window, in words. */
export const breachesOf = (s: Series): ReadonlyArray<string> => {
  const t = s.thresholds
  const total = s.total
  const out: string[] = []
  const errorRate = total.count === 0 ? 0 : total.errors / total.count
  if (errorRate > t.error_rate) out.push(`Error rate ${pct(errorRate)} is over ${pct(t.error_rate)}`)
  if ((total.ttft_ms.p95 ?? 0) > t.ttft_p95_ms)
    out.push(`TTFT p95 ${ms(total.ttft_ms.p95)} is over ${ms(t.ttft_p95_ms)}`)
  if ((total.latency_ms.p95 ?? 0) > t.latency_p95_ms)
    out.push(`Latency p95 ${ms(total.latency_ms.p95)} is over ${ms(t.latency_p95_ms)}`)
  if ((total.queue_wait_ms.p95 ?? 0) > t.queue_wait_p95_ms)
    out.push(`Queue wait p95 ${ms(total.queue_wait_ms.p95)} is over ${ms(t.queue_wait_p95_ms)}`)
  if (
    total.leaders > 0 &&
    total.followers > 0 &&
    total.followers / total.leaders < t.followers_per_leader_min
  )
    out.push(
      `Followers per leader ${(total.followers / total.leaders).toFixed(1)} is under ${t.followers_per_leader_min} (a burst coalesces poorly)`,
    )
  return out
}

interface ChartSpec {
  readonly title: string
  readonly unit: string
  readonly lines: ReadonlyArray<{ readonly label: string; readonly values: (b: Bucket) => number | null }>
  readonly threshold?: number
}

const Chart = ({ spec, series }: { spec: ChartSpec; series: Series }) => {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const data = (): uPlot.AlignedData => {
    const xs = series.buckets.map((b) => b.t / 1000)
    const ys = spec.lines.map((line) => series.buckets.map((b) => line.values(b)))
    const limit = spec.threshold === undefined ? [] : [series.buckets.map(() => spec.threshold!)]
    return [xs, ...ys, ...limit]
  }
  useEffect(() => {
    const width = () => Math.max(240, (box.current?.clientWidth ?? 320) - 8)
    plot.current = new uPlot(
      {
        width: width(),
        height: 180,
        scales: {
          x: { time: true },
          y: { range: (_u, _min, max) => [0, Math.max(max, spec.threshold ?? 0) * 1.1 || 1] },
        },
        axes: [{}, { label: spec.unit, size: 60 }],
        series: [
          {},
          ...spec.lines.map((line, i) => ({
            label: line.label,
            stroke: colors[i % colors.length]!,
            width: 2,
            // A bucket between empty ones is a point, not an invisible line.
            points: { show: true, size: 5 },
          })),
          ...(spec.threshold === undefined
            ? []
            : [{ label: "alert threshold", stroke: "#a4161a", dash: [6, 4], width: 1.5 }]),
        ],
      },
      data(),
      box.current!,
    )
    const resize = () => plot.current?.setSize({ width: width(), height: 180 })
    window.addEventListener("resize", resize)
    return () => {
      window.removeEventListener("resize", resize)
      plot.current?.destroy()
    }
  }, [spec.title, spec.lines.length])
  useEffect(() => {
    plot.current?.setData(data())
  }, [series])
  const last = series.total
  const summary = spec.lines.map((line) => `${line.label} ${String(line.values(last) ?? "–")}`).join(", ")
  return html`<figure>
    <figcaption>${spec.title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${spec.title} over the last ${series.minutes} minutes; over the window: ${summary}`}></div>
  </figure>`
}

const p = (key: "ttft_ms" | "latency_ms" | "queue_wait_ms", threshold: number, title: string): ChartSpec => ({
  title,
  unit: "ms",
  threshold,
  lines: (["p50", "p95", "p99"] as const).map((q) => ({ label: q, values: (b: Bucket) => b[key][q] })),
})

const Dashboard = () => {
  const [series, setSeries] = useState<Series | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [token, setToken] = useState<string | null>(() => localStorage.getItem(tokenStorage))
  const [needsToken, setNeedsToken] = useState(false)
  const [draft, setDraft] = useState("")

  useEffect(() => {
    let stopped = false
    const load = async () => {
      try {
        const response = await fetch("/ops/series?minutes=5&step_s=5", {
          headers: token === null ? {} : { authorization: `Bearer ${token}` },
        })
        if (response.status === 401) {
          setNeedsToken(true)
          return
        }
        if (!response.ok) throw new Error(`the gateway answered ${response.status}`)
        const body = (await response.json()) as Series
        if (!stopped) {
          setSeries(body)
          setError(null)
        }
      } catch (caught) {
        if (!stopped)
          setError(
            `Could not refresh: ${caught instanceof Error ? caught.message : String(caught)}. Retrying.`,
          )
      }
    }
    void load()
    const timer = setInterval(load, refreshMs)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [token])

  if (needsToken) {
    return html`<main class="signin">
      <h1>DAC operations</h1>
      <form
        onSubmit=${(event: Event) => {
          event.preventDefault()
          localStorage.setItem(tokenStorage, draft)
          setNeedsToken(false)
          setToken(draft)
        }}
      >
        <label for="ops-token">Ops token</label>
        <input id="ops-token" type="password" autocomplete="off" value=${draft} required autofocus
          onInput=${(event: Event) => setDraft((event.target as HTMLInputElement).value)} />
        <p class="help">This gateway has <code>OPS_TOKEN</code> set; the dashboard needs it.${token === null ? "" : " The one kept here was refused."}</p>
        <button type="submit">Open the dashboard</button>
      </form>
    </main>`
  }
  if (series === null) {
    return html`<main class="dash"><h1>DAC operations</h1>${error === null ? html`<p role="status">Loading…</p>` : html`<p class="error" role="alert">${error}</p>`}</main>`
  }
  const t = series.thresholds
  const total = series.total
  const errorRate = total.count === 0 ? 0 : total.errors / total.count
  const breaches = breachesOf(series)
  const providers = [...new Set(series.buckets.flatMap((b) => Object.keys(b.by_provider)))].sort()
  const tiles = [
    { label: "requests", value: String(total.count), breach: false },
    { label: "error rate", value: pct(errorRate), breach: errorRate > t.error_rate },
    { label: "TTFT p95", value: ms(total.ttft_ms.p95), breach: (total.ttft_ms.p95 ?? 0) > t.ttft_p95_ms },
    {
      label: "latency p95",
      value: ms(total.latency_ms.p95),
      breach: (total.latency_ms.p95 ?? 0) > t.latency_p95_ms,
    },
    {
      label: "queue wait p95",
      value: ms(total.queue_wait_ms.p95),
      breach: (total.queue_wait_ms.p95 ?? 0) > t.queue_wait_p95_ms,
    },
    { label: "leaders", value: String(total.leaders), breach: false },
    { label: "followers", value: String(total.followers), breach: false },
    { label: "cache hits", value: String(total.cache_hits), breach: false },
    {
      label: "followers per leader",
      value: total.leaders === 0 ? "–" : (total.followers / total.leaders).toFixed(1),
      breach:
        total.leaders > 0 &&
        total.followers > 0 &&
        total.followers / total.leaders < t.followers_per_leader_min,
    },
  ]
  const charts: ReadonlyArray<ChartSpec> = [
    p("ttft_ms", t.ttft_p95_ms, "TTFT"),
    p("latency_ms", t.latency_p95_ms, "Latency"),
    p("queue_wait_ms", t.queue_wait_p95_ms, "Queue wait"),
    {
      title: "Error rate",
      unit: "%",
      threshold: t.error_rate * 100,
      lines: [{ label: "error rate", values: (b) => (b.count === 0 ? 0 : (b.errors / b.count) * 100) }],
    },
    {
      title: "Requests per provider",
      unit: "requests",
      lines: providers.map((name) => ({ label: name, values: (b: Bucket) => b.by_provider[name] ?? 0 })),
    },
    {
      title: "Coalescing",
      unit: "requests",
      lines: [
        { label: "leaders", values: (b) => b.leaders },
        { label: "followers", values: (b) => b.followers },
        { label: "cache hits", values: (b) => b.cache_hits },
      ],
    },
  ]
  return html`<main class="dash">
    <header>
      <h1>DAC operations</h1>
      <p class="help">Last ${series.minutes} minutes, ${series.step_ms / 1000} s buckets; refreshes every 2 s. Updated <time datetime=${new Date(series.now).toISOString()}>${new Date(series.now).toLocaleTimeString()}</time>.</p>
    </header>
    ${error === null ? null : html`<p class="error" role="alert">${error}</p>`}
    <div role="status" aria-live="polite">
      ${
        breaches.length === 0
          ? html`<p class="ok">No alert threshold breached.</p>`
          : html`<div class="breaches"><p>Alert thresholds breached:</p><ul>${breaches.map((b) => html`<li>${b}</li>`)}</ul></div>`
      }
    </div>
    <h2>Over the window</h2>
    <ul class="tiles">
      ${tiles.map(
        (tile) => html`<li class=${`tile${tile.breach ? " breach" : ""}`} data-tile=${tile.label}>
          <span class="label">${tile.label}</span><span class="value">${tile.value}</span>${tile.breach ? html`<span class="label"> over threshold</span>` : null}
        </li>`,
      )}
    </ul>
    <h2>Over time</h2>
    <div class="charts">
      ${charts.map((spec) => html`<${Chart} key=${`${spec.title}-${spec.lines.length}`} spec=${spec} series=${series} />`)}
    </div>
    <h2 id="pacers">Pacers</h2>
    <div class="table-wrap">
      <table aria-labelledby="pacers">
        <thead><tr><th scope="col">provider</th><th scope="col">tokens</th><th scope="col">in flight</th><th scope="col">queued</th><th scope="col">concurrency limit</th><th scope="col">paused until</th></tr></thead>
        <tbody>
          ${series.pacer.map(
            (row) =>
              html`<tr><th scope="row">${row.provider}</th><td>${row.tokens.toFixed(1)}</td><td>${row.in_flight}</td><td>${row.queued}</td><td>${row.concurrency_limit}</td><td>${row.paused_until ?? "–"}</td></tr>`,
          )}
        </tbody>
      </table>
    </div>
  </main>`
}

render(html`<${Dashboard} />`, document.getElementById("app")!)
