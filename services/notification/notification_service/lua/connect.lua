-- An agent's socket authenticated on a replica (or the agent moved to this desk: see leave.lua).
-- ARGV[1] agent, ARGV[2] connection id, ARGV[3] presence ttl (ms), ARGV[4] display name.
-- Answers {previous (connection id or ''), status, queues (comma list), capacity}.
local agent, conn = ARGV[1], ARGV[2]
local ak = k_agent(agent)
local prev = redis.call('GET', k_conn(agent)) or ''
redis.call('SET', k_conn(agent), conn, 'PX', ARGV[3])
redis.call('HSET', ak, 'name', ARGV[4])
redis.call('HSETNX', ak, 'status', 'away')
redis.call('HSETNX', ak, 'queues', '')
redis.call('HSETNX', ak, 'capacity', '1')
redis.call('HSETNX', ak, 'idle', NOW)
touch(ak)
redis.call('SADD', K_AGENTS, agent)
refresh(agent)
local h = redis.call('HMGET', ak, 'status', 'queues', 'capacity')
return {previous = prev, status = h[1], queues = h[2], capacity = tonumber(h[3]) or 1}
