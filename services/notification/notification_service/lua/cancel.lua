-- The customer cancels its request (queued or held); the `left` QueueEvent goes to the outbox in this step.
-- ARGV[1] sid, ARGV[2] event id. Answers {outcome = cancelled, queue, seen (agents who saw it), event}
-- or {outcome = not_queued, state (the request's state, '' when there is none)}.
local sid = ARGV[1]
local r = redis.call('HMGET', k_req(sid), 'state', 'queue')
if r[1] ~= 'queued' and r[1] ~= 'held' then return {outcome = 'not_queued', state = r[1] or ''} end
local seen = dequeue(sid, 'cancelled')
local event = emit(ARGV[2], 'left', r[2], sid, '', {reason = 'cancelled'})
return {outcome = 'cancelled', queue = r[2], seen = seen, event = event}
