-- The customer cancels its request. ARGV[3] sid.
-- Returns {'cancelled', queue, agents who saw it...} or {'not_queued', state or ''}.
local sid = ARGV[3]
local r = redis.call('HMGET', key('req', sid), 'state', 'queue')
if r[1] ~= 'queued' then return {'not_queued', r[1] or ''} end
local out = {'cancelled', r[2]}
for _, a in ipairs(dequeue(sid, 'cancelled')) do table.insert(out, a) end
return out
