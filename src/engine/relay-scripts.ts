import { redisScript } from "../store/redis.ts"

/** The relay's Lua scripts (engine/relay.ts): each one atomic step on Redis. */

/** Claims a key (and registers its leader) in one step; answers the leader's turn when it has one. */
export const claimScript = redisScript(
  "relay.claim",
  2,
  `local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return false`,
)

/** Keeps (PEXPIRE, ARGV[2] > 0) or drops a claim, if it is still the leader's. */
export const settleScript = redisScript(
  "relay.settle",
  1,
  `local held = redis.call('GET', KEYS[1])
if not held or cjson.decode(held).leader ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('DEL', KEYS[1])`,
)

/** Redis's time and each given replica's lease end (false: not in the registry). */
export const leasesScript = redisScript(
  "relay.leases",
  1,
  `local t = redis.call('TIME')
local out = { tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) }
for i, replica in ipairs(ARGV) do out[i + 1] = redis.call('ZSCORE', KEYS[1], replica) end
return out`,
)
