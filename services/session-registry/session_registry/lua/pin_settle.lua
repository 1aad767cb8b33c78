-- The PIN step after a partition script, for PIN ARGV[2] of session ARGV[1]; ARGV[3] is what to do:
--   keep     the session renewed its lifetime: so does its PIN
--   release  the session gave the PIN up at event (ARGV[4], ARGV[5]): released unless a newer claim holds it
--   final    the session ended: released whatever claimed it
-- Nothing happens to a PIN another session owns. Returns PinSettleResult {done}.

local sid, pin, mode = ARGV[1], ARGV[2], ARGV[3]
local key = k_pin(pin)
local held = redis.call('HMGET', key, 'sid', 'ts', 'seq')
if held[1] ~= sid then return { done = false } end
if mode == 'keep' then
  redis.call('PEXPIRE', key, C.session_ttl_ms)
  redis.call('PEXPIRE', K_LIVE, C.session_ttl_ms)
  return { done = true }
end
if mode == 'release' then
  local ts, seq = tonumber(ARGV[4]), tonumber(ARGV[5])
  local hts, hseq = tonumber(held[2]) or 0, tonumber(held[3]) or 0
  if hts > ts or (hts == ts and hseq > seq) then return { done = false } end
end
redis.call('DEL', key)
redis.call('SREM', K_LIVE, pin)
return { done = true }
