-- The notification scripts' shared Lua, put between shared.scripts' prelude (NOW in ms, the constants C, the key
-- functions k_<shape>(...) / K_<SHAPE> of the desk whose base is KEYS[1]) and each script's body. Every key is
-- the desk's, so a script runs in its desk's slot. Times are milliseconds throughout, Redis's clock.

local function touch(k)
  redis.call('PEXPIRE', k, C.retention_ms)
end

local function split(csv)
  local out = {}
  for item in string.gmatch(csv or '', '[^,]+') do table.insert(out, item) end
  return out
end

local function score(priority, enqueued_at)
  -- Higher priority first, then first come first served; exact integers (a Lua number argument keeps 14 digits).
  return string.format('%.0f', -tonumber(priority) * 1e13 + tonumber(enqueued_at))
end

-- Append a QueueEvent to the desk's outbox stream in the same step as the change it reports (outbox.py publishes
-- it). Returns {entry, event_id, subject, data} so the caller can try to publish it at once.
local function emit(event_id, etype, queue, sid, agent, data)
  local subject = 'cobrowse.queue.' .. queue .. '.' .. etype
  local body = cjson.encode({
    v = 1, event_id = event_id, type = etype, queue = queue, session_id = sid, at = NOW / 1000,
    agent_id = (agent and agent ~= '') and agent or cjson.null, data = data or {},
  })
  local entry = redis.call('XADD', K_OUTBOX, '*', 'i', event_id, 's', subject, 'd', body)
  return {entry = entry, event_id = event_id, subject = subject, data = body}
end

-- The dispatch index. For each queue: avail:<q> holds the agents available and online serving it (what a
-- customer's status counts), free:<q> those of them with room for another offer or claim, scored by the time
-- they have been idle since (longest idle first). Every script that changes an agent's status, presence, load or
-- queues calls refresh(agent) (or unindex for queues it leaves); a presence key that lapses without a script (its
-- replica died) is found by the dispatch that picks the agent, and by reconcile.
local function unindex(agent, queues)
  for _, q in ipairs(queues) do
    redis.call('SREM', k_avail(q), agent)
    redis.call('ZREM', k_free(q), agent)
  end
end

local function refresh(agent)
  local h = redis.call('HMGET', k_agent(agent), 'status', 'queues', 'capacity', 'idle')
  local online = h[1] == 'available' and redis.call('EXISTS', k_conn(agent)) == 1
  local room = online and
    redis.call('SCARD', k_asessions(agent)) + redis.call('SCARD', k_aoffers(agent)) < (tonumber(h[3]) or 1)
  for _, q in ipairs(split(h[2])) do
    if online then redis.call('SADD', k_avail(q), agent) else redis.call('SREM', k_avail(q), agent) end
    if room then redis.call('ZADD', k_free(q), h[4] or NOW, agent) else redis.call('ZREM', k_free(q), agent) end
  end
end

-- Drop the outstanding offer of a request, if any, so it can be offered again; returns the agent it was offered to.
local function clear_offer(sid)
  local rk = k_req(sid)
  local r = redis.call('HMGET', rk, 'offered_to', 'queue')
  local agent = r[1]
  if not agent or agent == '' then return false end
  redis.call('HSET', rk, 'offered_to', '')
  local s = redis.call('ZSCORE', k_q(r[2]), sid)
  if s then redis.call('ZADD', k_u(r[2]), s, sid) end
  redis.call('ZREM', K_OFFERS, sid .. '|' .. agent)
  redis.call('SREM', k_aoffers(agent), sid)
  refresh(agent)
  return agent
end

-- Forget who is shown a request (and who declined it, unless `keep_declined`); returns those agents.
local function forget_seen(sid, keep_declined)
  local seen = redis.call('SMEMBERS', k_seen(sid))
  for _, a in ipairs(seen) do redis.call('SREM', k_aseen(a), sid) end
  redis.call('DEL', k_seen(sid))
  if not keep_declined then redis.call('DEL', k_declined(sid)) end
  return seen
end

-- Take a queued or held request out of its queue into `state`; returns the agents who saw it.
local function dequeue(sid, state)
  local rk = k_req(sid)
  local queue = redis.call('HGET', rk, 'queue')
  clear_offer(sid)
  redis.call('ZREM', k_q(queue), sid)
  redis.call('ZREM', k_u(queue), sid)
  redis.call('ZREM', k_held(queue), sid)
  redis.call('ZREM', K_WAITS, sid)
  redis.call('HSET', rk, 'state', state, 'left_at', NOW)
  if state ~= 'claimed' then redis.call('SREM', K_LIVE, sid) end
  return forget_seen(sid, false)
end

-- Give back the capacity a claimed session held; returns the agent.
local function release(sid)
  local agent = redis.call('HGET', k_req(sid), 'claimed_by')
  if agent and agent ~= '' then
    redis.call('SREM', k_asessions(agent), sid)
    redis.call('HSET', k_req(sid), 'claimed_by', '')
    refresh(agent)
  end
  redis.call('SREM', K_LIVE, sid)
  return agent or ''
end

-- Withdraw what an agent sees (offers and broadcasts), except requests of `keep` queues (a set, may be nil).
-- Returns a list of {session_id, queue} withdrawn.
local function withdraw(agent, keep)
  local out = {}
  for _, sid in ipairs(redis.call('SMEMBERS', k_aseen(agent))) do
    local r = redis.call('HMGET', k_req(sid), 'queue', 'offered_to')
    if not (keep and r[1] and keep[r[1]]) then
      if r[2] == agent then clear_offer(sid) end
      redis.call('SREM', k_seen(sid), agent)
      redis.call('SREM', k_aseen(agent), sid)
      table.insert(out, {session_id = sid, queue = r[1] or ''})
    end
  end
  return out
end

-- The longest idle agent of the queue's free index that may be shown `sid` (online, has not declined it), or nil.
-- Agents whose presence lapsed are taken out of the index on the way, so the work is the number of agents that
-- declined the request (or died) ahead of the one picked, not the number serving the queue.
local function pick(queue, sid)
  local declined, i = k_declined(sid), 0
  while true do
    local page = redis.call('ZRANGE', k_free(queue), i, i + 7)
    if #page == 0 then return nil end
    for _, a in ipairs(page) do
      if redis.call('EXISTS', k_conn(a)) == 0 then
        unindex(a, {queue})  -- and out of its other queues' indexes: the page shifted, look again from i
        refresh(a)
        break
      end
      i = i + 1
      if redis.call('SISMEMBER', declined, a) == 0 then return a end
    end
  end
end

-- Hand out a queue's waiting requests to agents with room, longest idle first.
-- queue, mode (offer|broadcast), offer timeout (ms), `only`: a session id to look at only that request (broadcast
-- of a new request), or '', and the day (YYYYMMDD) of the counters.
-- Offer mode takes the requests not on offer (u:<queue>), best first, each to the best agent of the free index,
-- until nobody has room. Broadcast mode shows the requests to every agent with room. Held requests are in neither
-- q: nor u:, so they are never offered nor counted.
-- Returns {flag, serving, shown = {{session_id, agent_id, enqueued_at, customer_name}...}}; flag is '',
-- 'no_agents' or 'agents_available' when the queue's "nobody serves it" state changed.
local function dispatch_queue(queue, mode, timeout, only, day)
  local shown = {}
  local function show(sid, a)
    redis.call('SADD', k_seen(sid), a)
    redis.call('SADD', k_aseen(a), sid)
    touch(k_seen(sid))
    touch(k_aseen(a))
    local r = redis.call('HMGET', k_req(sid), 'enqueued_at', 'customer_name')
    table.insert(shown, {session_id = sid, agent_id = a, enqueued_at = tonumber(r[1]) or 0, customer_name = r[2] or ''})
  end

  if mode == 'offer' then
    local i = 0
    while redis.call('ZCARD', k_free(queue)) > 0 do
      local sid = redis.call('ZRANGE', k_u(queue), i, i)[1]
      if not sid then break end
      local a = pick(queue, sid)
      if a then
        redis.call('HSET', k_req(sid), 'offered_to', a)
        redis.call('ZREM', k_u(queue), sid)  -- the next request is now at i
        redis.call('ZADD', K_OFFERS, NOW + timeout, sid .. '|' .. a)
        redis.call('SADD', k_aoffers(a), sid)
        touch(k_aoffers(a))
        show(sid, a)
        refresh(a)
      else
        i = i + 1  -- every agent with room declined it
      end
    end
  else
    local reqs
    if only ~= '' then reqs = {only} else reqs = redis.call('ZRANGE', k_q(queue), 0, -1) end
    local agents = {}
    for _, a in ipairs(redis.call('ZRANGE', k_free(queue), 0, -1)) do
      if redis.call('EXISTS', k_conn(a)) == 1 then table.insert(agents, a) else refresh(a) end
    end
    for _, sid in ipairs(reqs) do
      if #agents == 0 then break end
      if redis.call('HGET', k_req(sid), 'state') == 'queued' then
        local seen, declined = k_seen(sid), k_declined(sid)
        for _, a in ipairs(agents) do
          if redis.call('SISMEMBER', seen, a) == 0 and redis.call('SISMEMBER', declined, a) == 0 then show(sid, a) end
        end
      end
    end
  end

  local serving = redis.call('SCARD', k_avail(queue))
  local flag = ''
  if serving == 0 and redis.call('ZCARD', k_q(queue)) > 0 then
    if redis.call('SET', k_noagents(queue), '1', 'NX', 'PX', C.retention_ms) then flag = 'no_agents' end
  elseif serving > 0 then
    if redis.call('DEL', k_noagents(queue)) == 1 then flag = 'agents_available' end
  end
  if #shown > 0 then
    local stats = k_stats(day, queue)
    redis.call('HINCRBY', stats, 'offered', #shown)
    redis.call('PEXPIRE', stats, C.stats_ttl_ms)
  end
  return {flag = flag, serving = serving, shown = shown}
end
