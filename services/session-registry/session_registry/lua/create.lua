-- Create a session. ARGV[1] session id, ARGV[2] JSON fields {queue, priority, customer_id, customer_name,
-- client_ip}, ARGV[3] custom (BYOP) PIN or "", ARGV[4] idempotency key or "".
-- Returns {session = view, existing = bool} or {error = "pin_taken"}.
-- A known idempotency key answers the session it created (whatever its state) and creates nothing: the lookup and
-- the creation are this one script, so concurrent retries of one start create one session.

local sid, custom, idem = ARGV[1], ARGV[3], ARGV[4]
if idem ~= '' then
  local known = redis.call('GET', k_idem(idem))
  local existing = known and load(known)
  if existing then return cjson.encode({ session = view(existing), existing = true }) end
end
if custom ~= '' then
  -- Reserved until the SDK confirms it, so two customers cannot start with the same custom PIN.
  if not redis.call('SET', k_pin(custom), sid, 'NX', 'PX', C.session_ttl_ms) then
    return cjson.encode({ error = 'pin_taken' })
  end
  redis.call('SADD', k_bucket(bucket_of(custom)), custom)
  redis.call('PEXPIRE', k_bucket(bucket_of(custom)), C.session_ttl_ms)
end
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
if idem ~= '' then redis.call('SET', k_idem(idem), sid, 'PX', C.session_ttl_ms) end
return cjson.encode({ session = view(s), existing = false })
