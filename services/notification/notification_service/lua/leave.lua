-- An agent moves to another desk (it serves queues of one desk at a time): it leaves this one. Refused while it
-- holds claimed sessions here (their capacity is counted in this desk). ARGV[1] agent.
-- Answers {held = n} (refused: n sessions held) or {held = 0, withdrawn = {{session_id, queue}...}}; the caller
-- connects the agent in its new desk (connect.lua).
local agent = ARGV[1]
local held = redis.call('SCARD', k_asessions(agent))
if held > 0 then return {held = held} end
local ak = k_agent(agent)
local withdrawn = withdraw(agent, nil)
unindex(agent, split(redis.call('HGET', ak, 'queues')))
redis.call('DEL', k_conn(agent), ak, k_aseen(agent), k_aoffers(agent))
redis.call('SREM', K_AGENTS, agent)
return {held = 0, withdrawn = withdrawn}
