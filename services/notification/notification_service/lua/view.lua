-- What a customer's status shows, read in one step and in O(1) whatever the number of agents.
-- ARGV[1] sid. Answers {found = false} or {found, state, queue, priority, enqueued_at (ms), escalated, agent_name,
-- position (1-based; 0 unless queued), available (agents available and online serving the queue),
-- recent (the queue's last claimed waits, s)}.
local sid = ARGV[1]
local r = redis.call('HMGET', k_req(sid), 'state', 'queue', 'priority', 'enqueued_at', 'escalated', 'agent_name')
if not r[1] then return {found = false} end
local position = 0
if r[1] == 'queued' then position = (redis.call('ZRANK', k_q(r[2]), sid) or -1) + 1 end
return {
  found = true, state = r[1], queue = r[2], priority = tonumber(r[3]) or 0, enqueued_at = tonumber(r[4]) or 0,
  escalated = r[5] == '1', agent_name = r[6] or '', position = position,
  available = redis.call('SCARD', k_avail(r[2])),
  recent = redis.call('LRANGE', k_recent(r[2]), 0, -1),
}
