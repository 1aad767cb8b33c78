-- Correct a queue's indexes of available agents (avail:, free:): drop agents whose presence lapsed without a
-- script (their replica died) or who are no longer available for it. ARGV[1] queue. Answers {removed}.
local queue = ARGV[1]
local removed = 0
for _, a in ipairs(redis.call('SMEMBERS', k_avail(queue))) do
  local h = redis.call('HMGET', k_agent(a), 'status', 'queues')
  local serves = false
  for _, q in ipairs(split(h[2])) do if q == queue then serves = true end end
  if h[1] ~= 'available' or not serves or redis.call('EXISTS', k_conn(a)) == 0 then
    unindex(a, {queue})
    refresh(a)
    removed = removed + 1
  end
end
return {removed = removed}
