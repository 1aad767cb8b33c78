-- Hand out a queue's waiting requests to eligible agents, longest idle first.
-- ARGV[4] queue, ARGV[5] mode (offer|broadcast), ARGV[6] offer timeout (s), ARGV[7] a session id to look at
-- only that request (broadcast of a new request), or ''.
-- Offer mode looks only at requests not currently offered (u:<queue>), best first, until no agent has room.
-- Returns {flag, serving, sid, agent, enqueued_at, customer_name, ...}; flag is '', 'no_agents' or
-- 'agents_available' when the queue's "nobody serves it" state changed.
local queue, mode, timeout, only = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
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
    local load = redis.call('SCARD', key('asessions', a)) + redis.call('SCARD', key('aoffers', a))
    local free = (tonumber(h[2]) or 1) - load
    if free > 0 then room[a] = free; nfree = nfree + 1 end
  end
end

local flag = ''
if serving == 0 and waiting > 0 then
  if redis.call('SET', key('noagents', queue), '1', 'NX', 'EX', RETENTION) then flag = 'no_agents' end
elseif serving > 0 then
  if redis.call('DEL', key('noagents', queue)) == 1 then flag = 'agents_available' end
end
local out = {flag, serving}

local function show(sid, a)
  redis.call('SADD', key('seen', sid), a)
  redis.call('SADD', key('aseen', a), sid)
  touch(key('seen', sid))
  touch(key('aseen', a))
  local r = redis.call('HMGET', key('req', sid), 'enqueued_at', 'customer_name')
  table.insert(out, sid)
  table.insert(out, a)
  table.insert(out, r[1])
  table.insert(out, r[2])
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
  else
    local seen = key('seen', sid)
    for _, a in ipairs(agents) do
      if room[a] and redis.call('SISMEMBER', seen, a) == 0 and redis.call('SISMEMBER', declined, a) == 0 then
        show(sid, a)
      end
    end
  end
end
return out
