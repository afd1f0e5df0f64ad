-- GCRA rate limit, atomic in Redis. KEYS[1]: the client's bucket; KEYS[2] (optional): the client's revocation
-- marker (`ghostpay:disabled:<client_id>`), read in this same round trip.
-- ARGV[1]: emission interval in microseconds (1e6 / rate); ARGV[2]: burst.
-- Returns {allowed (0/1), remaining, retry_after_us, reset_us, revoked (0/1)}.
local revoked = 0
if KEYS[2] and redis.call('GET', KEYS[2]) then revoked = 1 end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
-- A debt run up under an older, slower policy counts at most as one full burst under the current one.
if tat > now + tolerance then tat = now + tolerance end
local new_tat = tat + interval
local allow_at = new_tat - tolerance

if allow_at > now then
  return {0, 0, allow_at - now, tat - now, revoked}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, remaining, 0, new_tat - now, revoked}
