-- An agent declines a request it was shown; it is not shown to that agent again.
-- ARGV[3] session id, ARGV[4] agent id. Answers {queue} ('' when nothing changed).
local sid, agent = ARGV[3], ARGV[4]
local rk = key('req', sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'offered_to')
if r[1] ~= 'queued' or redis.call('SREM', key('seen', sid), agent) == 0 then return {queue = ''} end
redis.call('SREM', key('aseen', agent), sid)
redis.call('SADD', key('declined', sid), agent)
touch(key('declined', sid))
if r[3] == agent then clear_offer(sid) end
return {queue = r[2]}
