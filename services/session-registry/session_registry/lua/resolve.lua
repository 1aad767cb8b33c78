-- Resolve a PIN for an agent. ARGV[1] PIN (normalised). Returns JSON {session = view} or {error = code, misses?}.
-- A failed lookup counts one miss for the PIN's bucket (the PIN without its last C.pin_bucket_drop characters);
-- once a bucket holds C.pin_miss_limit misses within the window, every live PIN in it is retired for good.

local pin = ARGV[1]
local bucket = bucket_of(pin)

local function retire(s)
  if s.pin_retired == '1' then return end
  s.pin_retired = '1'
  local prev = s.state
  commit(s, s.id .. ':retired:' .. s.pin, 'pin_retired', 'api', prev, { pin = s.pin })
  persist(s)
end

local function hot() return (tonumber(redis.call('GET', k_misses(bucket))) or 0) >= C.pin_miss_limit end

local sid = redis.call('GET', k_pin(pin))
local s = sid and load(sid)
if s and s.state ~= 'ended' and s.pin == pin then
  if s.pin_retired ~= '1' and hot() then retire(s) end
  if s.pin_retired == '1' then return cjson.encode({ error = 'pin_retired' }) end
  if agents(s) >= C.max_agents then return cjson.encode({ error = 'agent_limit' }) end
  return cjson.encode({ session = view(s) })
end
if s and s.state ~= 'ended' then
  -- A custom PIN reserved by a session whose SDK has not confirmed it yet: it exists, so it is no miss.
  return cjson.encode({ error = 'pin_not_ready' })
end

local misses = redis.call('INCR', k_misses(bucket))
if misses == 1 then redis.call('PEXPIRE', k_misses(bucket), C.pin_miss_window_ms) end
if misses >= C.pin_miss_limit then
  for _, other in ipairs(redis.call('SMEMBERS', k_bucket(bucket))) do
    local osid = redis.call('GET', k_pin(other))
    local os = osid and load(osid)
    if os and os.state ~= 'ended' and os.pin == other then retire(os) end
  end
end
return cjson.encode({ error = 'pin_not_found', misses = misses })
