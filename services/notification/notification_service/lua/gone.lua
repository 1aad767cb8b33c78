-- An agent's socket closed. ARGV[3] agent, ARGV[4] connection id.
-- Answers {withdrawn = {{session_id, queue}...}}; nothing when a newer socket of the agent has taken over.
local agent, conn = ARGV[3], ARGV[4]
if redis.call('GET', key('conn', agent)) ~= conn then return {withdrawn = {}} end
redis.call('DEL', key('conn', agent))
set_available(agent, split(redis.call('HGET', key('agent', agent), 'queues')), false)
return {withdrawn = withdraw(agent, nil)}
