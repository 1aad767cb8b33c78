-- A request waited longer than its queue allows. ARGV[3] sid, [4] action (priority|move), [5] overflow queue,
-- [6] priority boost. Returns {} when nothing changed, else {action, from queue, to queue, priority,
-- agents who saw it (move only)...}.
local sid, action, overflow, boost = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local rk = key('req', sid)
redis.call('ZREM', key('waits'), sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'priority', 'escalated', 'enqueued_at')
if r[1] ~= 'queued' or r[4] == '1' then return {} end
redis.call('HSET', rk, 'escalated', '1')
if action == 'move' and overflow ~= r[2] then
  clear_offer(sid)
  local out = {'move', r[2], overflow, r[3]}
  for _, a in ipairs(forget_seen(sid)) do table.insert(out, a) end
  redis.call('ZREM', key('q', r[2]), sid)
  redis.call('ZREM', key('u', r[2]), sid)
  redis.call('ZADD', key('q', overflow), score(r[3], r[5]), sid)
  redis.call('ZADD', key('u', overflow), score(r[3], r[5]), sid)
  redis.call('HSET', rk, 'queue', overflow)
  redis.call('SADD', key('queues'), overflow)
  return out
end
local priority = tonumber(r[3]) + boost
redis.call('HSET', rk, 'priority', priority)
redis.call('ZADD', key('q', r[2]), score(priority, r[5]), sid)
redis.call('ZADD', key('u', r[2]), 'XX', score(priority, r[5]), sid)
return {'priority', r[2], r[2], tostring(priority)}
