-- Prelude of every script. ARGV[1] key prefix, ARGV[2] now (epoch seconds), ARGV[3] retention (seconds).
-- Keys are built here from the prefix because they depend on stored values (queues, agents): the service
-- needs one Redis (or one cluster slot), which it documents.
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local RETENTION = tonumber(ARGV[3])

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

-- Forget who saw a request; returns those agents, so they can be told it is gone.
local function forget_seen(sid)
  local seen = redis.call('SMEMBERS', key('seen', sid))
  for _, a in ipairs(seen) do redis.call('SREM', key('aseen', a), sid) end
  redis.call('DEL', key('seen', sid), key('declined', sid))
  return seen
end

-- Take a queued request out of its queue into `state`; returns the agents who saw it.
local function dequeue(sid, state)
  local rk = key('req', sid)
  local queue = redis.call('HGET', rk, 'queue')
  clear_offer(sid)
  redis.call('ZREM', key('q', queue), sid)
  redis.call('ZREM', key('u', queue), sid)
  redis.call('ZREM', key('waits'), sid)
  redis.call('HSET', rk, 'state', state, 'left_at', ARGV[2])
  if state ~= 'claimed' then redis.call('SREM', key('live'), sid) end
  return forget_seen(sid)
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
-- Returns {sid, queue, ...} of what was withdrawn.
local function withdraw(agent, keep)
  local out = {}
  for _, sid in ipairs(redis.call('SMEMBERS', key('aseen', agent))) do
    local r = redis.call('HMGET', key('req', sid), 'queue', 'offered_to')
    if not (keep and r[1] and keep[r[1]]) then
      if r[2] == agent then clear_offer(sid) end
      redis.call('SREM', key('seen', sid), agent)
      redis.call('SREM', key('aseen', agent), sid)
      table.insert(out, sid)
      table.insert(out, r[1] or '')
    end
  end
  return out
end

