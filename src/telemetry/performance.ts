import type { RequestLogEntry } from "../store/request-log-repo.ts"
import { type Percentiles, percentiles } from "./percentiles.ts"

export interface PerformanceSummary {
  readonly count: number
  readonly ttft_ms: Percentiles
  readonly latency_ms: Percentiles
  readonly queue_wait_ms: Percentiles
  readonly coalesce: {
    readonly leaders: number
    readonly followers: number
    readonly cache_hits: number
    readonly bypass: number
  }
  readonly error_rate: number
}

const numbers = (
  entries: ReadonlyArray<RequestLogEntry>,
  pick: (entry: RequestLogEntry) => number | null,
) => {
  const out: Array<number> = []
  for (const entry of entries) {
    const value = pick(entry)
    if (value !== null) out.push(value)
  }
  return out
}

/** The summary over some requests: percentiles of each timing, coalescing roles, error rate. */
export const summarize = (entries: ReadonlyArray<RequestLogEntry>): PerformanceSummary => {
  const count = (predicate: (entry: RequestLogEntry) => boolean) => entries.filter(predicate).length
  return {
    count: entries.length,
    ttft_ms: percentiles(numbers(entries, (e) => e.ttft_ms)),
    latency_ms: percentiles(numbers(entries, (e) => e.latency_ms)),
    queue_wait_ms: percentiles(numbers(entries, (e) => e.queue_wait_ms)),
    coalesce: {
      leaders: count((e) => e.coalesce === "leader"),
      followers: count((e) => e.coalesce === "follower"),
      cache_hits: count((e) => e.coalesce === "cache_hit"),
      bypass: count((e) => e.coalesce === "bypass"),
    },
    error_rate: entries.length === 0 ? 0 : count((e) => e.status === "error") / entries.length,
  }
}
