-- Create a session. ARGV[1] session id, ARGV[2] JSON fields {queue, priority, customer_id, customer_name,
-- client_ip}, ARGV[3] custom (BYOP) PIN or "". Returns the view JSON or {error = "pin_taken"}.

local sid, custom = ARGV[1], ARGV[3]
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
-- The dedupe set exists from the start, so that the lifetime set below covers it (no event id is empty).
redis.call('SADD', k_seen(sid), '')
redis.call('ZADD', K_INDEX, NOW, sid)
-- The index outlives no session: drop members older than any session can be.
redis.call('ZREMRANGEBYSCORE', K_INDEX, '-inf', NOW - C.session_ttl_ms - C.retention_ms)
emit(s, sid .. ':created', 'created', 'api', nil, { queue = s.queue })
persist(s)
return cjson.encode({ session = view(s) })
