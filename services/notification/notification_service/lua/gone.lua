-- An agent's socket closed. ARGV[1] agent, ARGV[2] connection id.
-- Answers {withdrawn = {{session_id, queue}...}, queues}; nothing when a newer socket of the agent has taken over.
local agent, conn = ARGV[1], ARGV[2]
local queues = redis.call('HGET', k_agent(agent), 'queues') or ''
if redis.call('GET', k_conn(agent)) ~= conn then return {withdrawn = {}, queues = queues} end
redis.call('DEL', k_conn(agent))
local withdrawn = withdraw(agent, nil)
refresh(agent)
return {withdrawn = withdrawn, queues = queues}
