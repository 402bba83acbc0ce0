/**
 * A token bucket: `capacity` tokens, refilled at `ratePerSecond`. Pure arithmetic over an
 * explicit clock reading, so the pacer and its tests agree on the math.
 */
export interface TokenBucket {
  tokens: number
  updatedAt: number
  readonly ratePerSecond: number
  readonly capacity: number
}

export const makeBucket = (ratePerSecond: number, capacity: number, now: number): TokenBucket => ({
  tokens: capacity,
  updatedAt: now,
  ratePerSecond,
  capacity,
})

export const refill = (bucket: TokenBucket, now: number): void => {
  if (now > bucket.updatedAt) {
    bucket.tokens = Math.min(
      bucket.capacity,
      bucket.tokens + ((now - bucket.updatedAt) * bucket.ratePerSecond) / 1000,
    )
    bucket.updatedAt = now
  }
}

/** Takes one token if there is one (after refilling to `now`). */
export const tryTake = (bucket: TokenBucket, now: number): boolean => {
  refill(bucket, now)
  if (bucket.tokens < 1) return false
  bucket.tokens -= 1
  return true
}

/** Milliseconds until a whole token is available (0 when one is). */
export const msUntilToken = (bucket: TokenBucket, now: number): number => {
  refill(bucket, now)
  return bucket.tokens >= 1 ? 0 : ((1 - bucket.tokens) * 1000) / bucket.ratePerSecond
}
