-- An agent is done with a session it claimed (the session may go on, e.g. with another agent).
-- ARGV[1] session id, ARGV[2] agent id. Answers {queue} ('' when the agent did not hold it).
local sid, agent = ARGV[1], ARGV[2]
local r = redis.call('HMGET', k_req(sid), 'claimed_by', 'queue')
if r[1] ~= agent then return {queue = ''} end
redis.call('SREM', k_asessions(agent), sid)
redis.call('HSET', k_req(sid), 'claimed_by', '', 'released_at', NOW)
refresh(agent)
return {queue = r[2]}
