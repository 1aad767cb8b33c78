-- Dispatch a queue (see dispatch_queue in common.lua).
-- ARGV[3] queue, [4] mode, [5] offer timeout (s), [6] only this session id or '', [7] day, [8] counters' TTL.
return dispatch_queue(ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8]))
