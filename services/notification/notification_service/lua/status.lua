-- An agent sets its status, queues and capacity.
-- ARGV[3] agent, ARGV[4] status, ARGV[5] queues (comma separated), ARGV[6] capacity.
-- Answers {withdrawn = {{session_id, queue}...}}: what the agent no longer sees (it went away or stopped serving
-- a queue).
local agent, status, queues, capacity = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ak = key('agent', agent)
local old = redis.call('HMGET', ak, 'status', 'queues')
local before = {}
for _, q in ipairs(split(old[2])) do before[q] = true end
set_available(agent, split(old[2]), false)
local keep = {}
for _, q in ipairs(split(queues)) do
  keep[q] = true
  redis.call('SADD', key('queues'), q)
  if old[1] ~= 'available' or not before[q] then
    -- Idle time counts from when the agent became available for the queue.
    redis.call('ZADD', key('qagents', q), NOW, agent)
  else
    redis.call('ZADD', key('qagents', q), 'NX', NOW, agent)
  end
end
for q in pairs(before) do
  if not keep[q] then redis.call('ZREM', key('qagents', q), agent) end
end
redis.call('HSET', ak, 'status', status, 'queues', queues, 'capacity', capacity)
touch(ak)
local online = redis.call('EXISTS', key('conn', agent)) == 1
set_available(agent, split(queues), status == 'available' and online)
if status ~= 'available' then return {withdrawn = withdraw(agent, nil)} end
return {withdrawn = withdraw(agent, keep)}
