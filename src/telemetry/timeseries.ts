import type { RequestLogEntry } from "../store/request-log-repo.ts"
import { type Percentiles, percentiles } from "./percentiles.ts"

/** The seeds' alert thresholds, drawn on the dashboard's charts. */
export const alertThresholds = {
  error_rate: 0.01,
  ttft_p95_ms: 1_500,
  latency_p95_ms: 6_000,
  queue_wait_p95_ms: 1_000,
  /** Under a burst (leaders > 0 and followers > 0), followers per leader below this is a breach. */
  followers_per_leader_min: 10,
} as const

export interface SeriesBucket {
  /** The bucket's start (epoch ms). */
  readonly t: number
  readonly count: number
  readonly errors: number
  readonly ttft_ms: Percentiles
  readonly latency_ms: Percentiles
  readonly queue_wait_ms: Percentiles
  readonly leaders: number
  readonly followers: number
  readonly cache_hits: number
  /** Requests per provider (requests refused before a provider was known count as `none`). */
  readonly by_provider: Readonly<Record<string, number>>
}

const pick = (entries: ReadonlyArray<RequestLogEntry>, get: (e: RequestLogEntry) => number | null) => {
  const out: Array<number> = []
  for (const e of entries) {
    const v = get(e)
    if (v !== null) out.push(v)
  }
  return out
}

const bucketOf = (t: number, entries: ReadonlyArray<RequestLogEntry>): SeriesBucket => {
  const byProvider: Record<string, number> = {}
  let errors = 0
  let leaders = 0
  let followers = 0
  let cacheHits = 0
  for (const e of entries) {
    const provider = e.provider ?? "none"
    byProvider[provider] = (byProvider[provider] ?? 0) + 1
    if (e.status === "error") errors++
    if (e.coalesce === "leader") leaders++
    else if (e.coalesce === "follower") followers++
    else if (e.coalesce === "cache_hit") cacheHits++
  }
  return {
    t,
    count: entries.length,
    errors,
    ttft_ms: percentiles(pick(entries, (e) => e.ttft_ms)),
    latency_ms: percentiles(pick(entries, (e) => e.latency_ms)),
    queue_wait_ms: percentiles(pick(entries, (e) => e.queue_wait_ms)),
    leaders,
    followers,
    cache_hits: cacheHits,
    by_provider: byProvider,
  }
}

/**
 * The requests of the last `windowMs` before `now` in buckets of `stepMs` (oldest first, every
 * bucket present, empty ones too), and the whole window as one bucket (`total`).
 */
export const timeSeries = (
  items: ReadonlyArray<{ readonly at: number; readonly entry: RequestLogEntry }>,
  now: number,
  windowMs: number,
  stepMs: number,
) => {
  const count = Math.max(1, Math.ceil(windowMs / stepMs))
  const end = Math.floor(now / stepMs) * stepMs + stepMs
  const start = end - count * stepMs
  const slots: Array<Array<RequestLogEntry>> = Array.from({ length: count }, () => [])
  const all: Array<RequestLogEntry> = []
  for (const { at, entry } of items) {
    if (at < start || at >= end) continue
    slots[Math.floor((at - start) / stepMs)]!.push(entry)
    all.push(entry)
  }
  return {
    step_ms: stepMs,
    from: start,
    to: end,
    buckets: slots.map((entries, i) => bucketOf(start + i * stepMs, entries)),
    total: bucketOf(start, all),
  }
}
