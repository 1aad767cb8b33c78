-- A request waited longer than its queue allows. ARGV[3] sid, [4] action (priority|move), [5] overflow queue,
-- [6] priority boost. Answers {action = '' (nothing changed) | priority | move, from, to, priority,
-- seen (agents who saw it; move only)}.
local sid, action, overflow, boost = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local rk = key('req', sid)
redis.call('ZREM', key('waits'), sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'priority', 'escalated', 'enqueued_at')
if r[1] ~= 'queued' or r[4] == '1' then return {action = ''} end
redis.call('HSET', rk, 'escalated', '1')
if action == 'move' and overflow ~= r[2] then
  clear_offer(sid)
  local seen = forget_seen(sid, false)
  redis.call('ZREM', key('q', r[2]), sid)
  redis.call('ZREM', key('u', r[2]), sid)
  redis.call('ZADD', key('q', overflow), score(r[3], r[5]), sid)
  redis.call('ZADD', key('u', overflow), score(r[3], r[5]), sid)
  redis.call('HSET', rk, 'queue', overflow)
  redis.call('SADD', key('queues'), overflow)
  return {action = 'move', from = r[2], to = overflow, priority = tonumber(r[3]), seen = seen}
end
local priority = tonumber(r[3]) + boost
redis.call('HSET', rk, 'priority', priority)
redis.call('ZADD', key('q', r[2]), score(priority, r[5]), sid)
redis.call('ZADD', key('u', r[2]), 'XX', score(priority, r[5]), sid)
return {action = 'priority', from = r[2], to = r[2], priority = priority, seen = {}}
