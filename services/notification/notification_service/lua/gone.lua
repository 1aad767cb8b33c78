-- An agent's socket closed. ARGV[3] agent, ARGV[4] connection id.
-- Returns {sid, queue, ...} withdrawn; nothing when a newer socket of the agent has taken over.
local agent, conn = ARGV[3], ARGV[4]
if redis.call('GET', key('conn', agent)) ~= conn then return {} end
redis.call('DEL', key('conn', agent))
return withdraw(agent, nil)
