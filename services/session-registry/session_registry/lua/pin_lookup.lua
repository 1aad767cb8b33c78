-- The bucket step of a PIN lookup: the session owning PIN ARGV[1], and whether the bucket is hot (C.pin_miss_limit
-- failed lookups within the window). Returns PinLookupResult {session_id ("" if none), hot}.

local sid = redis.call('HGET', k_pin(ARGV[1]), 'sid')
local misses = tonumber(redis.call('GET', K_MISSES)) or 0
return { session_id = sid or '', hot = misses >= C.pin_miss_limit }
