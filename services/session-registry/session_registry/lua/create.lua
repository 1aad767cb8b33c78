-- Create a session. ARGV[1] session id, ARGV[2] JSON fields {queue, priority, customer_id, customer_name,
-- client_ip}, ARGV[3] custom (BYOP) PIN or "" (the PIN step before has reserved it for this id).
-- Returns CreateResult {session, existing}: a session that exists already (a retried start with the same
-- idempotency key, which names the same id) is answered as it is, and nothing is created or published again.

local sid, custom = ARGV[1], ARGV[3]
local existing = load(sid)
if existing then return { session = view(existing), existing = true } end
local s = cjson.decode(ARGV[2])
s.id = sid
s.state = 'created'
s.created_at = NOW
s.updated_at = NOW
s.custom_pin = custom
redis.call('ZADD', K_INDEX, NOW, sid)
-- The index outlives no session: drop members older than any session can be.
redis.call('ZREMRANGEBYSCORE', K_INDEX, '-inf', NOW - C.session_ttl_ms - C.retention_ms)
emit(s, sid .. ':created', 'created', 'api', nil, { queue = s.queue })
persist(s)
return { session = view(s), existing = false }
