-- An agent declines a request it was shown; it is not shown to that agent again.
-- ARGV[1] session id, ARGV[2] agent id. Answers {queue} ('' when nothing changed).
local sid, agent = ARGV[1], ARGV[2]
local r = redis.call('HMGET', k_req(sid), 'state', 'queue', 'offered_to')
if r[1] ~= 'queued' or redis.call('SREM', k_seen(sid), agent) == 0 then return {queue = ''} end
redis.call('SREM', k_aseen(agent), sid)
redis.call('SADD', k_declined(sid), agent)
touch(k_declined(sid))
if r[3] == agent then clear_offer(sid) end
return {queue = r[2]}
