-- Dispatch a queue (see dispatch_queue in common.lua).
-- ARGV[4] queue, [5] mode, [6] offer timeout (s), [7] only this session id or '', [8] day, [9] counters' TTL.
return dispatch_queue(ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], tonumber(ARGV[9]))
