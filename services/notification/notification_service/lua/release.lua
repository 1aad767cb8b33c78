-- An agent is done with a session it claimed (the session may go on, e.g. with another agent).
-- ARGV[3] session id, ARGV[4] agent id. Answers {queue} ('' when the agent did not hold it).
local sid, agent = ARGV[3], ARGV[4]
local r = redis.call('HMGET', key('req', sid), 'claimed_by', 'queue')
if r[1] ~= agent then return {queue = ''} end
redis.call('SREM', key('asessions', agent), sid)
redis.call('HSET', key('req', sid), 'claimed_by', '', 'released_at', NOW)
return {queue = r[2]}
