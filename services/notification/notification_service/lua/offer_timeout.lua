-- An offer's acceptance time ran out: the agent is set away and everything it was shown moves on.
-- ARGV[3] timer member 'sid|agent'. Returns {} for a stale timer, else {sid, queue, ...} withdrawn.
local member = ARGV[3]
redis.call('ZREM', key('offers'), member)
local sid, agent = string.match(member, '^(.*)|(.*)$')
local r = redis.call('HMGET', key('req', sid), 'state', 'offered_to')
if r[1] ~= 'queued' or r[2] ~= agent then return {} end
redis.call('HSET', key('agent', agent), 'status', 'away')
return withdraw(agent, nil)
