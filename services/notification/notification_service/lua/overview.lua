-- Every queue of the desk in one step, for the gauges, /stats and dashboards, so that a replica reads neither every
-- agent nor every waiting request over the wire every few seconds:
--   agents    serving it by status: available, busy (available and present, claimed sessions at capacity), away,
--             offline (no presence key);
--   waiting   requests in q:<queue>;  oldest_ms  when the one waiting longest was enqueued;  no_agents  its flag.
-- Answers {queues = {<queue> = {agents = {...}, waiting, oldest_ms, no_agents}}}.

local out = {}
local function row(q)
  if not out[q] then out[q] = {agents = {available = 0, busy = 0, away = 0, offline = 0}} end
  return out[q]
end

for _, a in ipairs(redis.call('SMEMBERS', K_AGENTS)) do
  local h = redis.call('HMGET', k_agent(a), 'status', 'queues', 'capacity')
  if h[1] then
    local status = h[1]
    if redis.call('EXISTS', k_conn(a)) == 0 then
      status = 'offline'
    elseif status == 'available' and redis.call('SCARD', k_asessions(a)) >= (tonumber(h[3]) or 1) then
      status = 'busy'
    end
    for _, q in ipairs(split(h[2])) do
      local counts = row(q).agents
      counts[status] = (counts[status] or 0) + 1
    end
  end
end

-- q:<queue> is ordered by priority, then arrival (score = -priority * 1e13 + enqueued_at), so each priority's first
-- member is its oldest: the walk looks at one member per priority present, O(log n) each.
local function oldest(key)
  local best
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  while first[1] do
    local s = tonumber(first[2])
    local enqueued = s % 1e13
    if not best or enqueued < best then best = enqueued end
    local next_priority = string.format('%.0f', s - enqueued + 1e13)
    first = redis.call('ZRANGEBYSCORE', key, next_priority, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  return best
end

for _, q in ipairs(redis.call('SMEMBERS', K_QUEUES)) do row(q) end
for q, r in pairs(out) do
  r.waiting = redis.call('ZCARD', k_q(q))
  r.oldest_ms = oldest(k_q(q)) or 0
  r.no_agents = redis.call('EXISTS', k_noagents(q)) == 1
end
return {queues = out}
