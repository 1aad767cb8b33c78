-- Apply one session event to the help request of that session.
-- ARGV[3] sid, [4] state, [5] prev_state, [6] pin, [7] queue, [8] priority, [9] customer name,
-- [10] the session's updated_at, [11] max wait of the queue (s), and for the dispatch of a new request:
-- [12] the queue's mode, [13] offer timeout (s), [14] day, [15] counters' TTL.
-- Returns {'queued', queue, dispatch_queue's answer...} | {'left', queue, reason, agents who saw it...}
-- | {'ended', queue, claimed_by} | {'noop'} | {'stale'}.
local sid, state, prev, pin = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local queue, priority, name, updated = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local rk = key('req', sid)
local r = redis.call('HMGET', rk, 'state', 'updated', 'queue')
-- Replicas may handle two events of one session concurrently: never let an older one undo a newer one.
if r[1] == 'ended' or (r[2] and tonumber(r[2]) > tonumber(updated)) then return {'stale'} end

-- The wait counts from the session's change to waiting (its updated_at), not from when a replica got the event:
-- events are handled concurrently, and the queue must keep the customers' order.
local function create()
  local since = math.min(tonumber(updated), NOW)
  redis.call('HSET', rk, 'session_id', sid, 'state', 'queued', 'queue', queue, 'priority', priority, 'pin', pin,
    'customer_name', name, 'enqueued_at', since, 'offered_to', '', 'claimed_by', '', 'escalated', '0',
    'updated', updated)
  touch(rk)
  redis.call('ZADD', key('q', queue), score(priority, since), sid)
  redis.call('ZADD', key('u', queue), score(priority, since), sid)
  redis.call('ZADD', key('waits'), since + tonumber(ARGV[11]), sid)
  redis.call('SADD', key('queues'), queue)
  redis.call('SADD', key('live'), sid)
  -- Offer it in the same script: one round trip from the event to the offer.
  local out = {'queued', queue}
  for _, v in ipairs(dispatch_queue(queue, ARGV[12], tonumber(ARGV[13]), sid, ARGV[14], tonumber(ARGV[15]))) do
    table.insert(out, v)
  end
  return out
end

if state == 'waiting' and pin ~= '' then
  if not r[1] then return create() end
  redis.call('HSET', rk, 'updated', updated)
  if r[1] == 'queued' then
    redis.call('HSET', rk, 'pin', pin)
    return {'noop'}
  end
  -- Back to waiting after an agent was with the customer: a new request.
  if prev == 'active' then
    release(sid)
    return create()
  end
  return {'noop'}
end

if state == 'active' or state == 'ended' then
  if r[1] == 'queued' then
    local reason = state == 'ended' and 'ended' or 'joined'
    local out = {'left', r[3], reason}
    for _, a in ipairs(dequeue(sid, state == 'ended' and 'ended' or 'joined')) do table.insert(out, a) end
    redis.call('HSET', rk, 'updated', updated)
    return out
  end
  if state == 'ended' then
    local agent = release(sid)
    redis.call('HSET', rk, 'state', 'ended', 'updated', updated)
    touch(rk)
    return {'ended', r[3] or '', agent}
  end
end
if r[1] then redis.call('HSET', rk, 'updated', updated) end
return {'noop'}
