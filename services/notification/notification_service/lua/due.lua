-- Lease due timers of a sorted set to the calling replica: each due member is pushed `lease` seconds ahead,
-- so exactly one replica gets it now, and another gets it again if the first dies before removing it.
-- ARGV[3] set name (offers|waits), ARGV[4] lease (s), ARGV[5] limit. Answers {members}.
local k = key(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', k, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[5]))
for _, m in ipairs(due) do redis.call('ZADD', k, 'XX', NOW + tonumber(ARGV[4]), m) end
return {members = due}
