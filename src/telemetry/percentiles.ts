export interface Percentiles {
  readonly p50: number | null
  readonly p95: number | null
  readonly p99: number | null
}

/** Nearest-rank percentile of already sorted values; null for none. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number | null =>
  sorted.length === 0
    ? null
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/** p50, p95 and p99 of `values`, which it sorts in place. */
export const percentiles = (values: Array<number>): Percentiles => {
  values.sort((a, b) => a - b)
  return { p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99) }
}
