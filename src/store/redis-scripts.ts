import { redisScript } from "./redis.ts"

// Every script reads Redis's own clock (TIME), so the replicas' clocks never have to agree, and
// refreshes the caller's lease in the replica registry, so a slot it takes is never counted as a
// dead replica's. Slots are held per replica in a hash (replica id → count); a replica whose lease
// has lapsed (killed, or cut off from Redis longer than SHARED_LEASE_MS) is no longer counted and
// its field is deleted by the next script that reads the hash.

const prelude = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function held(hash, replicas)
  local fields = redis.call('HGETALL', hash)
  local total = 0
  for i = 1, #fields, 2 do
    local lease = redis.call('ZSCORE', replicas, fields[i])
    if lease and tonumber(lease) > now then
      total = total + tonumber(fields[i + 1])
    else
      redis.call('HDEL', hash, fields[i])
    end
  end
  return total
end
`

/**
 * Pacer, take up to `want` slots: KEYS state (hash: tokens, ts, limit, paused), slots (hash),
 * replicas; ARGV replica, want, rps, burst, max concurrency, lease ms. Returns
 * { granted, wait ms (0 none, -1 until a slot frees), tokens, in flight, limit, paused ms left }.
 */
export const pacerAcquire = redisScript(
  "pacer.acquire",
  3,
  `${prelude}
local replica = ARGV[1]
local want = tonumber(ARGV[2])
local rps = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local maxc = tonumber(ARGV[5])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), replica)
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'limit', 'paused')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
local limit = math.min(tonumber(s[3]) or maxc, maxc)
local paused = tonumber(s[4]) or 0
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rps / 1000) end
local inflight = held(KEYS[2], KEYS[3])
local granted = 0
local wait = 0
if paused > now then
  wait = math.ceil(paused - now)
else
  granted = math.max(0, math.min(want, math.floor(tokens), limit - inflight))
  tokens = tokens - granted
  if granted > 0 then redis.call('HINCRBY', KEYS[2], replica, granted) end
  if granted < want then
    if limit - inflight - granted > 0 then
      wait = math.max(1, math.ceil((1 - tokens) * 1000 / rps))
    else
      wait = -1
    end
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now), 'limit', limit)
return { granted, wait, tostring(tokens), inflight + granted, limit, math.max(0, math.ceil(paused - now)) }`,
)

/**
 * Pacer, read the budget without taking anything (for `/ready` and `/metrics`): KEYS state, slots,
 * replicas; ARGV rps, burst, max concurrency. Returns { tokens, in flight, limit, paused ms left }.
 */
export const pacerPeek = redisScript(
  "pacer.peek",
  3,
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rps = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxc = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'limit', 'paused')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rps / 1000) end
local fields = redis.call('HGETALL', KEYS[2])
local inflight = 0
for i = 1, #fields, 2 do
  local lease = redis.call('ZSCORE', KEYS[3], fields[i])
  if lease and tonumber(lease) > now then inflight = inflight + tonumber(fields[i + 1]) end
end
local paused = tonumber(s[4]) or 0
return { tostring(tokens), inflight, math.min(tonumber(s[3]) or maxc, maxc), math.max(0, math.ceil(paused - now)) }`,
)

/**
 * Pacer, give slots back and report how the calls ended: KEYS state, slots; ARGV replica, count,
 * outcome (`ok`: the limit grows by one; `rate_limited`: halves it and pauses; `pause`: pauses
 * only; `none`), pause ms, max concurrency.
 */
export const pacerRelease = redisScript(
  "pacer.release",
  2,
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local replica = ARGV[1]
local count = tonumber(ARGV[2])
local outcome = ARGV[3]
local maxc = tonumber(ARGV[5])
if count > 0 then
  local have = tonumber(redis.call('HGET', KEYS[2], replica) or '0')
  local n = math.min(have, count)
  if n > 0 then redis.call('HINCRBY', KEYS[2], replica, -n) end
end
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or maxc)
if outcome == 'rate_limited' then
  redis.call('HSET', KEYS[1], 'limit', math.max(1, math.floor(limit / 2)))
elseif outcome == 'ok' and limit < maxc then
  redis.call('HSET', KEYS[1], 'limit', limit + 1)
end
if outcome == 'rate_limited' or outcome == 'pause' then
  local paused = tonumber(redis.call('HGET', KEYS[1], 'paused') or '0')
  redis.call('HSET', KEYS[1], 'paused', tostring(math.max(paused, now + tonumber(ARGV[4]))))
end
return 1`,
)

/**
 * Pacer or a key's in-flight slots, this replica holds exactly `count` (its own count is the truth:
 * it corrects what lost replies and an outage left wrong): KEYS slots hash, replicas; ARGV replica,
 * count, lease ms.
 */
export const renewHeld = redisScript(
  "held.renew",
  2,
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1`,
)

/**
 * Key limits, admit one request: KEYS minute (hash: epoch second → count), in flight (hash),
 * tokens (hash: UTC day → tokens), replicas; ARGV replica, rpm, concurrent, tokens per day (each
 * -1 for none), lease ms. Returns { 0 } admitted, { 1, tokens, retry ms } over the day's budget,
 * { 2, count, retry ms } over the minute's, { 3, in flight } over the concurrency.
 */
export const keyAdmit = redisScript(
  "keys.admit",
  4,
  `${prelude}
local replica = ARGV[1]
local rpm = tonumber(ARGV[2])
local concurrent = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), replica)
local day = math.floor(now / 86400000)
if budget >= 0 then
  local used = tonumber(redis.call('HGET', KEYS[3], tostring(day)) or '0')
  if used >= budget then return { 1, used, math.ceil((day + 1) * 86400000 - now) } end
end
local second = math.floor(now / 1000)
if rpm >= 0 then
  local fields = redis.call('HGETALL', KEYS[1])
  local count = 0
  local seconds = {}
  for i = 1, #fields, 2 do
    local s = tonumber(fields[i])
    if s <= second - 60 then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      count = count + tonumber(fields[i + 1])
      seconds[#seconds + 1] = { s, tonumber(fields[i + 1]) }
    end
  end
  if count >= rpm then
    table.sort(seconds, function(a, b) return a[1] < b[1] end)
    local freed = 0
    local retry = 60000
    for _, e in ipairs(seconds) do
      freed = freed + e[2]
      if count - freed < rpm then
        retry = math.max(1, math.ceil((e[1] + 60) * 1000 - now))
        break
      end
    end
    return { 2, count, retry }
  end
end
if concurrent >= 0 then
  local inflight = held(KEYS[2], KEYS[4])
  if inflight >= concurrent then return { 3, inflight } end
  redis.call('HINCRBY', KEYS[2], replica, 1)
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
if rpm >= 0 then
  redis.call('HINCRBY', KEYS[1], tostring(second), 1)
  redis.call('PEXPIRE', KEYS[1], 61000)
end
return { 0 }`,
)

/** Key limits, a request ended: KEYS in flight; ARGV replica. */
export const keyRelease = redisScript(
  "keys.release",
  1,
  `local have = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if have > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 1`,
)

/** Key limits, tokens a request used, on Redis's UTC day: KEYS tokens; ARGV tokens. */
export const keyCharge = redisScript(
  "keys.charge",
  1,
  `local t = redis.call('TIME')
local day = math.floor(tonumber(t[1]) / 86400)
redis.call('HINCRBY', KEYS[1], tostring(day), tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], 2 * 86400000)
return 1`,
)
