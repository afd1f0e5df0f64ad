-- GCRA rate limit, atomic in Redis, one round trip.
-- KEYS[1]: the client's bucket; then, when ARGV[3] names a role, the instance's rate-limit policy, a JSON string
-- the operator writes ({"generation": n, "limits": {"<role>": {"requestsPerSecond": r, "burst": b}, ...}});
-- then (optional) the client's revocation marker (`ghostpay:disabled:<client_id>`).
-- ARGV[1]: the pod's default emission interval in microseconds (1e6 / rate); ARGV[2]: its default burst;
-- ARGV[3] (optional): the caller's role, looked up in the policy; a role it lacks, or an absent policy key, keeps
-- the defaults.
-- Returns {allowed (0/1), remaining, retry_after_us, reset_us, revoked (0/1), rate (string), burst}: the rate and
-- burst that decided, so the caller's headers and messages tell the limit that applied.
local role = ARGV[3]
local policy_key, marker = nil, KEYS[2]
if role then policy_key, marker = KEYS[2], KEYS[3] end
local revoked = 0
if marker and redis.call('GET', marker) then revoked = 1 end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local rate = 1000000 / interval
if policy_key then
  local raw = redis.call('GET', policy_key)
  if raw then
    -- A policy that cannot be read leaves the defaults: a bad write must not stop every request.
    local ok, policy = pcall(cjson.decode, raw)
    local limit = ok and type(policy) == 'table' and type(policy.limits) == 'table' and policy.limits[role]
    if type(limit) == 'table' then
      local r, b = tonumber(limit.requestsPerSecond), tonumber(limit.burst)
      if r and b and r > 0 and b >= 1 then
        rate, burst, interval = r, math.floor(b), 1000000 / r
      end
    end
  end
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tolerance = interval * burst

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
-- A debt run up under an older, slower policy (more than the current one can owe) counts as a burst just spent
-- under the current one: this request passes and is written, the next come at the new rate. Without the write, a
-- raised limit would stay refused until the old debt ran out.
if tat > now + tolerance then tat = now + tolerance - interval end
local new_tat = tat + interval
local allow_at = new_tat - tolerance

if allow_at > now then
  return {0, 0, allow_at - now, tat - now, revoked, tostring(rate), burst}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, remaining, 0, new_tat - now, revoked, tostring(rate), burst}
