-- Correct a queue's maintained count of available agents: drop agents whose presence lapsed without a script (their
-- replica died) or who are no longer available for it. ARGV[3] queue. Answers {removed}.
local queue = ARGV[3]
local removed = 0
for _, a in ipairs(redis.call('SMEMBERS', key('avail', queue))) do
  local status = redis.call('HGET', key('agent', a), 'status')
  local serves = redis.call('ZSCORE', key('qagents', queue), a)
  if status ~= 'available' or not serves or redis.call('EXISTS', key('conn', a)) == 0 then
    redis.call('SREM', key('avail', queue), a)
    removed = removed + 1
  end
end
return {removed = removed}
