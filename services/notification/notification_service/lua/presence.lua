-- A replica renews the presence keys of the agents whose sockets it holds. ARGV[1] ttl (ms), ARGV[2..] agents.
-- Answers {renewed} (how many keys still existed).
local renewed = 0
for i = 2, #ARGV do renewed = renewed + redis.call('PEXPIRE', k_conn(ARGV[i]), ARGV[1]) end
return {renewed = renewed}
