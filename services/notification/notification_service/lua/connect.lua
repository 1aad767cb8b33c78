-- An agent's socket authenticated on a replica.
-- ARGV[3] agent, ARGV[4] connection id, ARGV[5] presence ttl (ms), ARGV[6] display name.
-- Answers {previous (connection id or ''), status, queues (comma list), capacity}.
local agent, conn = ARGV[3], ARGV[4]
local ak = key('agent', agent)
local prev = redis.call('GET', key('conn', agent)) or ''
redis.call('SET', key('conn', agent), conn, 'PX', ARGV[5])
redis.call('HSET', ak, 'name', ARGV[6])
redis.call('HSETNX', ak, 'status', 'away')
redis.call('HSETNX', ak, 'queues', '')
redis.call('HSETNX', ak, 'capacity', '1')
touch(ak)
redis.call('SADD', key('agents'), agent)
local h = redis.call('HMGET', ak, 'status', 'queues', 'capacity')
for _, q in ipairs(split(h[2])) do redis.call('ZADD', key('qagents', q), 'NX', NOW, agent) end
set_available(agent, split(h[2]), h[1] == 'available')
return {previous = prev, status = h[1], queues = h[2], capacity = tonumber(h[3]) or 1}
