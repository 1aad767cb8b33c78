-- Prelude of every script. ARGV[1] key prefix, ARGV[2] retention (seconds); each script's own arguments follow.
-- The time is Redis's, so replicas on hosts whose clocks differ still agree on when a timer is due.
-- Keys are built here from the prefix because they depend on stored values (queues, agents): the service
-- needs one Redis (or one cluster slot), which it documents. Every script answers one JSON object
-- (cjson.encode), decoded in store.py into a named model.
local P = ARGV[1]
local CLOCK = redis.call('TIME')
local NOW = tonumber(CLOCK[1]) + tonumber(CLOCK[2]) / 1e6
local RETENTION = tonumber(ARGV[2])

local function key(...)
  return P .. table.concat({...}, ':')
end

local function touch(k)
  redis.call('EXPIRE', k, RETENTION)
end

local function split(csv)
  local out = {}
  for item in string.gmatch(csv or '', '[^,]+') do table.insert(out, item) end
  return out
end

local function score(priority, enqueued_at)
  -- Higher priority first, then first come first served.
  return -tonumber(priority) * 1e10 + tonumber(enqueued_at)
end

-- Append a QueueEvent to the outbox stream in the same step as the change it reports (outbox.py publishes it).
-- Returns {entry, event_id, subject, data} so the caller can try to publish it at once.
local function emit(event_id, etype, queue, sid, agent, data)
  local subject = 'cobrowse.queue.' .. queue .. '.' .. etype
  local body = cjson.encode({
    v = 1, event_id = event_id, type = etype, queue = queue, session_id = sid, at = NOW,
    agent_id = (agent and agent ~= '') and agent or cjson.null, data = data or {},
  })
  local entry = redis.call('XADD', key('outbox'), '*', 'i', event_id, 's', subject, 'd', body)
  return {entry = entry, event_id = event_id, subject = subject, data = body}
end

-- The maintained count of available, online agents serving a queue (what a customer's status reads).
local function set_available(agent, queues, on)
  for _, q in ipairs(queues) do
    if on then redis.call('SADD', key('avail', q), agent) else redis.call('SREM', key('avail', q), agent) end
  end
end

-- Drop the outstanding offer of a request, if any, so it can be offered again; returns the agent it was offered to.
local function clear_offer(sid)
  local rk = key('req', sid)
  local r = redis.call('HMGET', rk, 'offered_to', 'queue')
  local agent = r[1]
  if not agent or agent == '' then return false end
  redis.call('HSET', rk, 'offered_to', '')
  local s = redis.call('ZSCORE', key('q', r[2]), sid)
  if s then redis.call('ZADD', key('u', r[2]), s, sid) end
  redis.call('ZREM', key('offers'), sid .. '|' .. agent)
  redis.call('SREM', key('aoffers', agent), sid)
  return agent
end

-- Forget who is shown a request (and who declined it, unless `keep_declined`); returns those agents.
local function forget_seen(sid, keep_declined)
  local seen = redis.call('SMEMBERS', key('seen', sid))
  for _, a in ipairs(seen) do redis.call('SREM', key('aseen', a), sid) end
  redis.call('DEL', key('seen', sid))
  if not keep_declined then redis.call('DEL', key('declined', sid)) end
  return seen
end

-- Take a queued or held request out of its queue into `state`; returns the agents who saw it.
local function dequeue(sid, state)
  local rk = key('req', sid)
  local queue = redis.call('HGET', rk, 'queue')
  clear_offer(sid)
  redis.call('ZREM', key('q', queue), sid)
  redis.call('ZREM', key('u', queue), sid)
  redis.call('ZREM', key('held', queue), sid)
  redis.call('ZREM', key('waits'), sid)
  redis.call('HSET', rk, 'state', state, 'left_at', NOW)
  if state ~= 'claimed' then redis.call('SREM', key('live'), sid) end
  return forget_seen(sid, false)
end

-- Give back the capacity a claimed session held; returns the agent.
local function release(sid)
  local agent = redis.call('HGET', key('req', sid), 'claimed_by')
  if agent and agent ~= '' then
    redis.call('SREM', key('asessions', agent), sid)
    redis.call('HSET', key('req', sid), 'claimed_by', '')
  end
  redis.call('SREM', key('live'), sid)
  return agent or ''
end

-- Withdraw what an agent sees (offers and broadcasts), except requests of `keep` queues (a set, may be nil).
-- Returns a list of {session_id, queue} withdrawn.
local function withdraw(agent, keep)
  local out = {}
  for _, sid in ipairs(redis.call('SMEMBERS', key('aseen', agent))) do
    local r = redis.call('HMGET', key('req', sid), 'queue', 'offered_to')
    if not (keep and r[1] and keep[r[1]]) then
      if r[2] == agent then clear_offer(sid) end
      redis.call('SREM', key('seen', sid), agent)
      redis.call('SREM', key('aseen', agent), sid)
      table.insert(out, {session_id = sid, queue = r[1] or ''})
    end
  end
  return out
end

-- Hand out a queue's waiting requests to eligible agents, longest idle first.
-- queue, mode (offer|broadcast), offer timeout (s), `only`: a session id to look at
-- only that request (broadcast of a new request), or '', day (YYYYMMDD) and the TTL of its counters.
-- Offer mode looks only at requests not currently offered (u:<queue>), best first, until no agent has room.
-- Held requests are in neither q: nor u:, so they are never offered nor counted.
-- Returns {flag, serving, shown = {{session_id, agent_id, enqueued_at, customer_name}...}}; flag is '',
-- 'no_agents' or 'agents_available' when the queue's "nobody serves it" state changed.
local function dispatch_queue(queue, mode, timeout, only, day, stats_ttl)
  local waiting = redis.call('ZCARD', key('q', queue))
  local reqs
  if mode == 'offer' then
    reqs = redis.call('ZRANGE', key('u', queue), 0, -1)
  elseif only ~= '' then
    reqs = {only}
  else
    reqs = redis.call('ZRANGE', key('q', queue), 0, -1)
  end
  local agents = redis.call('ZRANGE', key('qagents', queue), 0, -1)
  local room, nfree, serving = {}, 0, 0
  for _, a in ipairs(agents) do
    local h = redis.call('HMGET', key('agent', a), 'status', 'capacity')
    if h[1] == 'available' and redis.call('EXISTS', key('conn', a)) == 1 then
      serving = serving + 1
      redis.call('SADD', key('avail', queue), a)
      local load = redis.call('SCARD', key('asessions', a)) + redis.call('SCARD', key('aoffers', a))
      local free = (tonumber(h[2]) or 1) - load
      if free > 0 then room[a] = free; nfree = nfree + 1 end
    else
      -- Presence keys lapse without a script (a replica died): the maintained count is corrected here.
      redis.call('SREM', key('avail', queue), a)
    end
  end

  local flag = ''
  if serving == 0 and waiting > 0 then
    if redis.call('SET', key('noagents', queue), '1', 'NX', 'EX', RETENTION) then flag = 'no_agents' end
  elseif serving > 0 then
    if redis.call('DEL', key('noagents', queue)) == 1 then flag = 'agents_available' end
  end
  local shown = {}

  local function show(sid, a)
    redis.call('SADD', key('seen', sid), a)
    redis.call('SADD', key('aseen', a), sid)
    touch(key('seen', sid))
    touch(key('aseen', a))
    local r = redis.call('HMGET', key('req', sid), 'enqueued_at', 'customer_name')
    table.insert(shown, {session_id = sid, agent_id = a, enqueued_at = tonumber(r[1]) or 0, customer_name = r[2] or ''})
  end

  for _, sid in ipairs(reqs) do
    if nfree == 0 then break end
    local declined = key('declined', sid)
    if mode == 'offer' then
      local rk = key('req', sid)
      if (redis.call('HGET', rk, 'offered_to') or '') == '' then
        for _, a in ipairs(agents) do
          if room[a] and redis.call('SISMEMBER', declined, a) == 0 then
            redis.call('HSET', rk, 'offered_to', a)
            redis.call('ZREM', key('u', queue), sid)
            redis.call('ZADD', key('offers'), NOW + timeout, sid .. '|' .. a)
            redis.call('SADD', key('aoffers', a), sid)
            touch(key('aoffers', a))
            show(sid, a)
            room[a] = room[a] - 1
            if room[a] == 0 then room[a] = nil; nfree = nfree - 1 end
            break
          end
        end
      end
    elseif redis.call('HGET', key('req', sid), 'state') == 'queued' then
      local seen = key('seen', sid)
      for _, a in ipairs(agents) do
        if room[a] and redis.call('SISMEMBER', seen, a) == 0 and redis.call('SISMEMBER', declined, a) == 0 then
          show(sid, a)
        end
      end
    end
  end
  if #shown > 0 then
    local stats = key('stats', day, queue)
    redis.call('HINCRBY', stats, 'offered', #shown)
    redis.call('EXPIRE', stats, stats_ttl)
  end
  return {flag = flag, serving = serving, shown = shown}
end
