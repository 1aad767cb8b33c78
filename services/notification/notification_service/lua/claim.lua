-- An agent claims a request; exactly one claim wins. The `claimed` QueueEvent goes to the outbox in this step.
-- ARGV[1] session id, ARGV[2] agent id, ARGV[3] event id of the `claimed` event.
-- Answers {outcome = ok|already|taken|not_found|gone|not_offered|not_available|at_capacity, and for ok/already:
-- queue, pin, enqueued_at (ms); for ok: waited_ms, others (agents who saw it), withdrawn (requests no longer shown
-- to the claimant: it is full), event (the outbox entry)}.
local sid, agent = ARGV[1], ARGV[2]
local rk = k_req(sid)
local r = redis.call('HMGET', rk, 'state', 'queue', 'pin', 'enqueued_at', 'claimed_by')
if not r[1] then return {outcome = 'not_found'} end
if r[1] == 'claimed' then
  if r[5] == agent then
    return {outcome = 'already', queue = r[2], pin = r[3], enqueued_at = tonumber(r[4]) or 0}
  end
  return {outcome = 'taken'}
end
if r[1] ~= 'queued' then return {outcome = 'gone'} end
if redis.call('SISMEMBER', k_seen(sid), agent) == 0 then return {outcome = 'not_offered'} end
local a = redis.call('HMGET', k_agent(agent), 'status', 'capacity', 'name')
if a[1] ~= 'available' then return {outcome = 'not_available'} end
local own = redis.call('SISMEMBER', k_aoffers(agent), sid)
local load = redis.call('SCARD', k_asessions(agent)) + redis.call('SCARD', k_aoffers(agent)) - own
if load >= (tonumber(a[2]) or 1) then return {outcome = 'at_capacity'} end

redis.call('SREM', k_seen(sid), agent)
redis.call('SREM', k_aseen(agent), sid)
local others = dequeue(sid, 'claimed')
redis.call('HSET', rk, 'claimed_by', agent, 'claimed_at', NOW, 'agent_name', a[3] or '')
redis.call('SADD', k_asessions(agent), sid)
touch(k_asessions(agent))
-- Idle time counts from the last claim: the agent goes to the back of every queue it serves.
redis.call('HSET', k_agent(agent), 'idle', NOW)
refresh(agent)
-- Now full: the broadcasts it still sees are withdrawn (shown again when it has room); its offers stay.
local withdrawn = {}
if load + 1 >= (tonumber(a[2]) or 1) then
  for _, other in ipairs(redis.call('SMEMBERS', k_aseen(agent))) do
    if redis.call('SISMEMBER', k_aoffers(agent), other) == 0 then
      redis.call('SREM', k_seen(other), agent)
      redis.call('SREM', k_aseen(agent), other)
      table.insert(withdrawn, other)
    end
  end
end
local waited = NOW - (tonumber(r[4]) or NOW)
local event = emit(ARGV[3], 'claimed', r[2], sid, agent, {waited_s = waited / 1000})
return {
  outcome = 'ok', queue = r[2], pin = r[3], enqueued_at = tonumber(r[4]) or 0, waited_ms = waited,
  others = others, withdrawn = withdrawn, event = event,
}
