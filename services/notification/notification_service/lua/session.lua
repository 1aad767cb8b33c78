-- Apply one session event to the help request of that session, in the session's order.
-- ARGV[1] sid, [2] state, [3] prev_state, [4] pin, [5] queue, [6] priority, [7] customer name,
-- [8] the session's updated_at (ms), [9] its version, [10] ended_reason, [11] max wait of the queue (ms), and for
-- the dispatch of a new request: [12] the queue's mode, [13] offer timeout (ms), [14] day.
-- Answers {kind = ...}:
--   queued  {queue, dispatch}         a new request (dispatched in the same step)
--   left    {queue, reason, seen}     a queued or held request left (joined, ended, cancelled, abandoned, ...)
--   held    {queue, seen}             the customer is away: out of the queue, its place kept in held:<queue>
--   resumed {queue}                   the customer is back: in the queue again at its place
--   ended   {queue, agent}            a claimed (or joined) session ended; `agent` held it
--   noop | stale                      nothing changed (stale: the event is older than what was applied)
local sid, state, prev, pin = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local queue, priority, name, updated = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local version, ended_reason = tonumber(ARGV[9]), ARGV[10]
local rk = k_req(sid)
local tomb = k_tomb(sid)
local r = redis.call('HMGET', rk, 'state', 'updated', 'queue', 'version')

-- Order: the registry numbers a session's changes; the last version applied is kept on the request (or, before
-- the request exists, on a tombstone), and an event that is not newer changes nothing. Events without a version
-- (a registry older than contract 1) fall back to updated_at, which cannot order two events of one batch.
if r[1] == 'ended' then return {kind = 'stale'} end
if version > 0 then
  local last = r[1] and tonumber(r[4] or '0') or tonumber(redis.call('GET', tomb) or '0')
  if version <= (last or 0) then return {kind = 'stale'} end
elseif r[2] and tonumber(r[2]) > tonumber(updated) then
  return {kind = 'stale'}
end

local function applied()
  redis.call('HSET', rk, 'updated', updated, 'version', version)
end

-- The wait counts from the session's change to waiting (its updated_at), not from when a replica got the event.
local function create()
  local since = math.min(tonumber(updated), NOW)
  redis.call('HSET', rk, 'session_id', sid, 'state', 'queued', 'queue', queue, 'priority', priority, 'pin', pin,
    'customer_name', name, 'enqueued_at', since, 'offered_to', '', 'claimed_by', '', 'agent_name', '',
    'escalated', '0', 'updated', updated, 'version', version)
  touch(rk)
  redis.call('DEL', tomb)
  redis.call('ZADD', k_q(queue), score(priority, since), sid)
  redis.call('ZADD', k_u(queue), score(priority, since), sid)
  redis.call('ZADD', K_WAITS, since + tonumber(ARGV[11]), sid)
  redis.call('SADD', K_QUEUES, queue)
  redis.call('SADD', K_LIVE, sid)
  -- Offer it in the same script: one round trip from the event to the offer.
  local d = dispatch_queue(queue, ARGV[12], tonumber(ARGV[13]), sid, ARGV[14])
  return {kind = 'queued', queue = queue, dispatch = d}
end

if not r[1] then
  if state == 'waiting' and pin ~= '' then return create() end
  -- An active, reconnecting or ended session without a request: remember its version, so an older `waiting`
  -- delivered later never creates one.
  if state ~= 'created' and version > 0 then redis.call('SET', tomb, version, 'PX', C.retention_ms) end
  return {kind = 'noop'}
end

applied()
local current, q = r[1], r[3]

if state == 'waiting' and pin ~= '' then
  if current == 'queued' then
    redis.call('HSET', rk, 'pin', pin)
    return {kind = 'noop'}
  end
  if current == 'held' then
    local s = redis.call('ZSCORE', k_held(q), sid)
    redis.call('ZREM', k_held(q), sid)
    redis.call('ZADD', k_q(q), s, sid)
    redis.call('ZADD', k_u(q), s, sid)
    local due = tonumber(redis.call('HGET', rk, 'wait_due') or '') or NOW
    redis.call('ZADD', K_WAITS, due, sid)
    redis.call('HSET', rk, 'state', 'queued', 'pin', pin)
    return {kind = 'resumed', queue = q}
  end
  -- Back to waiting after an agent was with the customer: a new request.
  if prev == 'active' then
    release(sid)
    return create()
  end
  return {kind = 'noop'}
end

if state == 'reconnecting' and current == 'queued' then
  local s = redis.call('ZSCORE', k_q(q), sid)
  local due = redis.call('ZSCORE', K_WAITS, sid)
  clear_offer(sid)
  redis.call('ZREM', k_q(q), sid)
  redis.call('ZREM', k_u(q), sid)
  redis.call('ZREM', K_WAITS, sid)
  redis.call('ZADD', k_held(q), s, sid)
  redis.call('HSET', rk, 'state', 'held', 'held_at', NOW, 'wait_due', due or '')
  return {kind = 'held', queue = q, seen = forget_seen(sid, true)}
end

if state == 'active' or state == 'ended' then
  if current == 'queued' or current == 'held' then
    local reason, into = 'joined', 'joined'
    if state == 'ended' then
      if ended_reason == 'cancelled' then
        reason, into = 'cancelled', 'cancelled'
      elseif current == 'held' then
        reason, into = (ended_reason ~= '' and ended_reason or 'abandoned'), 'ended'
      else
        reason, into = 'ended', 'ended'
      end
    end
    return {kind = 'left', queue = q, reason = reason, seen = dequeue(sid, into)}
  end
  if state == 'ended' and current ~= 'cancelled' then
    local agent = release(sid)
    redis.call('HSET', rk, 'state', 'ended')
    touch(rk)
    return {kind = 'ended', queue = q or '', agent = agent}
  end
end
return {kind = 'noop'}
