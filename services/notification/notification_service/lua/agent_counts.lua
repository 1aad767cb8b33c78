-- The desk's agents by queue and status, counted here in one step (the gauges and /stats), so a replica does not
-- read every agent over the wire every few seconds. Answers {queues = {<queue> = {available, busy, away, offline}}}:
-- busy is available and present with claimed sessions at capacity, offline without a presence key.
local out = {}
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
      out[q] = out[q] or {available = 0, busy = 0, away = 0, offline = 0}
      out[q][status] = (out[q][status] or 0) + 1
    end
  end
end
return {queues = out}
