-- An agent's socket closed. ARGV[4] agent, ARGV[5] connection id.
-- Returns {sid, queue, ...} withdrawn; nothing when a newer socket of the agent has taken over.
local agent, conn = ARGV[4], ARGV[5]
if redis.call('GET', key('conn', agent)) ~= conn then return {} end
redis.call('DEL', key('conn', agent))
return withdraw(agent, nil)
