-- A failed PIN lookup counts one miss for its bucket (this slot). Once the bucket is hot (C.pin_miss_limit misses
-- within C.pin_miss_window_ms), the answer lists every PIN of the bucket with its owner, for store.py to retire
-- them in their partitions. Returns PinMissResult {misses, owners = [{pin, session_id}]}.

local misses = redis.call('INCR', K_MISSES)
if misses == 1 then redis.call('PEXPIRE', K_MISSES, C.pin_miss_window_ms) end
local owners = {}
if misses >= C.pin_miss_limit then
  for _, pin in ipairs(redis.call('SMEMBERS', K_LIVE)) do
    local sid = redis.call('HGET', k_pin(pin), 'sid')
    if sid then
      owners[#owners + 1] = { pin = pin, session_id = sid }
    else
      redis.call('SREM', K_LIVE, pin)  -- expired with its session
    end
  end
end
return { misses = misses, owners = owners }
