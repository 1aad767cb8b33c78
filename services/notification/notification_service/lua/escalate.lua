-- A request waited longer than its queue allows. ARGV[1] sid, [2] action (priority|move), [3] overflow queue (of
-- this desk), [4] priority boost. Answers {action = '' (nothing changed) | priority | move, from, to, priority,
-- seen (agents who saw it; move only)}.
local sid, action, overflow, boost = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local rk = k_req(sid)
redis.call('ZREM', K_WAITS, sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'priority', 'escalated', 'enqueued_at')
if r[1] ~= 'queued' or r[4] == '1' then return {action = ''} end
redis.call('HSET', rk, 'escalated', '1')
if action == 'move' and overflow ~= r[2] then
  clear_offer(sid)
  local seen = forget_seen(sid, false)
  redis.call('ZREM', k_q(r[2]), sid)
  redis.call('ZREM', k_u(r[2]), sid)
  redis.call('ZADD', k_q(overflow), score(r[3], r[5]), sid)
  redis.call('ZADD', k_u(overflow), score(r[3], r[5]), sid)
  redis.call('HSET', rk, 'queue', overflow)
  redis.call('SADD', K_QUEUES, overflow)
  return {action = 'move', from = r[2], to = overflow, priority = tonumber(r[3]), seen = seen}
end
local priority = tonumber(r[3]) + boost
redis.call('HSET', rk, 'priority', priority)
redis.call('ZADD', k_q(r[2]), score(priority, r[5]), sid)
redis.call('ZADD', k_u(r[2]), 'XX', score(priority, r[5]), sid)
return {action = 'priority', from = r[2], to = r[2], priority = priority, seen = {}}
