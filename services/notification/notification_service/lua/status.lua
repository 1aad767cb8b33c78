-- An agent sets its status, queues (all of this desk) and capacity.
-- ARGV[1] agent, ARGV[2] status, ARGV[3] queues (comma separated), ARGV[4] capacity.
-- Answers {withdrawn = {{session_id, queue}...}}: what the agent no longer sees (it went away or stopped serving
-- a queue).
local agent, status, queues, capacity = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ak = k_agent(agent)
local old = redis.call('HMGET', ak, 'status', 'queues')
unindex(agent, split(old[2]))
local keep = {}
for _, q in ipairs(split(queues)) do
  keep[q] = true
  redis.call('SADD', K_QUEUES, q)
end
-- Idle time counts from when the agent became available.
if old[1] ~= 'available' and status == 'available' then redis.call('HSET', ak, 'idle', NOW) end
redis.call('HSETNX', ak, 'idle', NOW)
redis.call('HSET', ak, 'status', status, 'queues', queues, 'capacity', capacity)
touch(ak)
redis.call('SADD', K_AGENTS, agent)
local withdrawn
if status ~= 'available' then withdrawn = withdraw(agent, nil) else withdrawn = withdraw(agent, keep) end
refresh(agent)
return {withdrawn = withdrawn}
