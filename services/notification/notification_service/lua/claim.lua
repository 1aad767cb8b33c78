-- An agent claims a request; exactly one claim wins.
-- ARGV[3] session id, ARGV[4] agent id.
-- Returns {'ok', queue, pin, enqueued_at, n, n other agents who saw it..., requests withdrawn from the agent...},
-- {'already', queue, pin, enqueued_at}
-- or {reason}: taken, not_found, gone, not_offered, not_available, at_capacity.
local sid, agent = ARGV[3], ARGV[4]
local rk = key('req', sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'pin', 'enqueued_at', 'claimed_by')
if not r[1] then return {'not_found'} end
if r[1] == 'claimed' then
  if r[5] == agent then return {'already', r[2], r[3], r[4]} end
  return {'taken'}
end
if r[1] ~= 'queued' then return {'gone'} end
if redis.call('SISMEMBER', key('seen', sid), agent) == 0 then return {'not_offered'} end
local a = redis.call('HMGET', key('agent', agent), 'status', 'capacity', 'queues')
if a[1] ~= 'available' then return {'not_available'} end
local own = redis.call('SISMEMBER', key('aoffers', agent), sid)
local load = redis.call('SCARD', key('asessions', agent)) + redis.call('SCARD', key('aoffers', agent)) - own
if load >= (tonumber(a[2]) or 1) then return {'at_capacity'} end

redis.call('SREM', key('seen', sid), agent)
redis.call('SREM', key('aseen', agent), sid)
local others = dequeue(sid, 'claimed')
redis.call('HSET', rk, 'claimed_by', agent, 'claimed_at', NOW)
redis.call('SADD', key('asessions', agent), sid)
touch(key('asessions', agent))
-- Idle time counts from the last claim: the agent goes to the back of every queue it serves.
for _, q in ipairs(split(a[3])) do redis.call('ZADD', key('qagents', q), 'XX', NOW, agent) end
local out = {'ok', r[2], r[3], r[4], #others}
for _, other in ipairs(others) do table.insert(out, other) end
-- Now full: the broadcasts it still sees are withdrawn (shown again when it has room); its offers stay.
if load + 1 >= (tonumber(a[2]) or 1) then
  for _, other in ipairs(redis.call('SMEMBERS', key('aseen', agent))) do
    if redis.call('SISMEMBER', key('aoffers', agent), other) == 0 then
      redis.call('SREM', key('seen', other), agent)
      redis.call('SREM', key('aseen', agent), other)
      table.insert(out, other)
    end
  end
end
return out
