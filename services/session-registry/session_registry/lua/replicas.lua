-- A replica's heartbeat: ARGV[1] (its name) is live for ARGV[2] ms more. Returns ReplicasResult {members}: every
-- replica whose heartbeat has not lapsed, in name order (each replica computes the same partition assignment).

redis.call('ZADD', K_MEMBERS, NOW + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', K_MEMBERS, '-inf', NOW)
redis.call('PEXPIRE', K_MEMBERS, tonumber(ARGV[2]) * 10)
local members = redis.call('ZRANGE', K_MEMBERS, 0, -1)
table.sort(members)
return { members = members }
