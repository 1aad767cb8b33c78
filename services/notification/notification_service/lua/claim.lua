-- An agent claims a request; exactly one claim wins. The `claimed` QueueEvent goes to the outbox in this step.
-- ARGV[3] session id, ARGV[4] agent id, ARGV[5] event id of the `claimed` event.
-- Answers {outcome = ok|already|taken|not_found|gone|not_offered|not_available|at_capacity, and for ok/already:
-- queue, pin, enqueued_at; for ok: waited_s, others (agents who saw it), withdrawn (requests no longer shown to
-- the claimant: it is full), event (the outbox entry)}.
local sid, agent = ARGV[3], ARGV[4]
local rk = key('req', sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'pin', 'enqueued_at', 'claimed_by')
if not r[1] then return {outcome = 'not_found'} end
if r[1] == 'claimed' then
  if r[5] == agent then
    return {outcome = 'already', queue = r[2], pin = r[3], enqueued_at = tonumber(r[4]) or 0}
  end
  return {outcome = 'taken'}
end
if r[1] ~= 'queued' then return {outcome = 'gone'} end
if redis.call('SISMEMBER', key('seen', sid), agent) == 0 then return {outcome = 'not_offered'} end
local a = redis.call('HMGET', key('agent', agent), 'status', 'capacity', 'queues', 'name')
if a[1] ~= 'available' then return {outcome = 'not_available'} end
local own = redis.call('SISMEMBER', key('aoffers', agent), sid)
local load = redis.call('SCARD', key('asessions', agent)) + redis.call('SCARD', key('aoffers', agent)) - own
if load >= (tonumber(a[2]) or 1) then return {outcome = 'at_capacity'} end

redis.call('SREM', key('seen', sid), agent)
redis.call('SREM', key('aseen', agent), sid)
local others = dequeue(sid, 'claimed')
redis.call('HSET', rk, 'claimed_by', agent, 'claimed_at', NOW, 'agent_name', a[4] or '')
redis.call('SADD', key('asessions', agent), sid)
touch(key('asessions', agent))
-- Idle time counts from the last claim: the agent goes to the back of every queue it serves.
for _, q in ipairs(split(a[3])) do redis.call('ZADD', key('qagents', q), 'XX', NOW, agent) end
-- Now full: the broadcasts it still sees are withdrawn (shown again when it has room); its offers stay.
local withdrawn = {}
if load + 1 >= (tonumber(a[2]) or 1) then
  for _, other in ipairs(redis.call('SMEMBERS', key('aseen', agent))) do
    if redis.call('SISMEMBER', key('aoffers', agent), other) == 0 then
      redis.call('SREM', key('seen', other), agent)
      redis.call('SREM', key('aseen', agent), other)
      table.insert(withdrawn, other)
    end
  end
end
local waited = math.floor((NOW - (tonumber(r[4]) or NOW)) * 1000 + 0.5) / 1000
local event = emit(ARGV[5], 'claimed', r[2], sid, agent, {waited_s = waited})
return {
  outcome = 'ok', queue = r[2], pin = r[3], enqueued_at = tonumber(r[4]) or 0, waited_s = waited,
  others = others, withdrawn = withdrawn, event = event,
}
