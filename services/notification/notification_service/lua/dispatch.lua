-- Dispatch a queue (see dispatch_queue in common.lua).
-- ARGV[1] queue, [2] mode, [3] offer timeout (ms), [4] only this session id or '', [5] day.
return dispatch_queue(ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5])
