-- The session an idempotency key names. ARGV[1] a new session id, claimed for the key (for the session TTL) when
-- the key names none yet. Returns IdemClaimResult {session_id, fresh}: fresh when this call claimed it.

local known = redis.call('GET', K_SID)
if known then return { session_id = known, fresh = false } end
redis.call('SET', K_SID, ARGV[1], 'PX', C.session_ttl_ms)
return { session_id = ARGV[1], fresh = true }
