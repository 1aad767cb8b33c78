-- An offer's acceptance time ran out: the agent is set away and everything it was shown moves on.
-- ARGV[3] timer member 'sid|agent'. Answers {withdrawn = {{session_id, queue}...}} (empty for a stale timer).
local member = ARGV[3]
redis.call('ZREM', key('offers'), member)
local sid, agent = string.match(member, '^(.*)|(.*)$')
local r = redis.call('HMGET', key('req', sid), 'state', 'offered_to')
if r[1] ~= 'queued' or r[2] ~= agent then return {withdrawn = {}} end
redis.call('HSET', key('agent', agent), 'status', 'away')
set_available(agent, split(redis.call('HGET', key('agent', agent), 'queues')), false)
return {withdrawn = withdraw(agent, nil)}
