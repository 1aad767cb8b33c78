-- Claim PIN ARGV[1] for session ARGV[2] in the PIN's bucket slot: it is free (then it is this session's now) or
-- already this session's. ARGV[3], ARGV[4]: the (ts, seq) of the claiming event (0, 0 for a custom PIN at create);
-- the PIN keeps the newest, so that a release for an older event leaves a PIN a newer claim holds.
-- Returns PinClaimResult {claimed, owner?}.

local pin, sid = ARGV[1], ARGV[2]
local ts, seq = tonumber(ARGV[3]), tonumber(ARGV[4])
local key = k_pin(pin)
local held = redis.call('HMGET', key, 'sid', 'ts', 'seq')
if held[1] and held[1] ~= sid then return { claimed = false, owner = held[1] } end
local hts, hseq = tonumber(held[2]) or -1, tonumber(held[3]) or -1
if not held[1] or ts > hts or (ts == hts and seq > hseq) then
  redis.call('HSET', key, 'sid', sid, 'ts', ARGV[3], 'seq', ARGV[4])
end
redis.call('PEXPIRE', key, C.session_ttl_ms)
redis.call('SADD', K_LIVE, pin)
redis.call('PEXPIRE', K_LIVE, C.session_ttl_ms)
return { claimed = true }
