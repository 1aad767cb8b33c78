-- An offer's acceptance time ran out: the agent is set away and everything it was shown moves on.
-- ARGV[1] timer member 'sid|agent'. Answers {withdrawn = {{session_id, queue}...}} (empty for a stale timer).
local member = ARGV[1]
redis.call('ZREM', K_OFFERS, member)
local sid, agent = string.match(member, '^(.*)|(.*)$')
local r = redis.call('HMGET', k_req(sid), 'state', 'offered_to')
if r[1] ~= 'queued' or r[2] ~= agent then return {withdrawn = {}} end
redis.call('HSET', k_agent(agent), 'status', 'away')
local withdrawn = withdraw(agent, nil)
refresh(agent)
return {withdrawn = withdrawn}
