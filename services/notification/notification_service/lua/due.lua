-- Lease the desk's due timers to the calling replica: each due member is pushed `lease` ms ahead, so exactly one
-- replica gets it now, and another gets it again if the first dies before removing it.
-- ARGV[1] lease (ms), ARGV[2] limit. Answers {offers, waits} (due members of each) and {next_ms}: the time until
-- the earliest timer left is due (-1: none).
local function lease(k)
  local due = redis.call('ZRANGEBYSCORE', k, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[2]))
  for _, m in ipairs(due) do redis.call('ZADD', k, 'XX', NOW + tonumber(ARGV[1]), m) end
  return due
end
local offers, waits = lease(K_OFFERS), lease(K_WAITS)
local next_ms = -1
for _, k in ipairs({K_OFFERS, K_WAITS}) do
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if first[2] then
    local d = math.max(tonumber(first[2]) - NOW, 0)
    if next_ms < 0 or d < next_ms then next_ms = d end
  end
end
return {offers = offers, waits = waits, next_ms = next_ms}
