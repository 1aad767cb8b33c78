-- Claim and fire the partition's due timers: removing the member and ending the session happen in this one
-- script, so a timer fires exactly once whichever replica runs it. ARGV[1] maximum number of timers to look at.
-- Returns FireResult {fired, looked_at, release?}: the PINs of the sessions it ended, for the PIN step after.

local due = redis.call('ZRANGEBYSCORE', K_TIMERS, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[1]))
local fired = 0
for _, member in ipairs(due) do
  redis.call('ZREM', K_TIMERS, member)
  local sid, kind = string.match(member, '^(.*)|([%w_]+)$')
  local s = sid and load(sid)
  if s then
    local at = timer_due(s, kind)
    if at and at <= NOW then
      local prev = s.state
      local event_id = sid .. ':timer:' .. kind .. ':' .. at
      if kind == 'heartbeat' then
        -- Silence means the customer is away, not gone: the reconnect window runs from now (held requests).
        s.away = '1'
        s.away_since = NOW
        commit(s, event_id, 'reconnecting', 'timer', prev, { cause = 'heartbeat_lost', timer = kind })
      else
        finish(s, REASONS[kind])
        commit(s, event_id, 'ended', 'timer', prev, { reason = s.ended_reason, timer = kind })
      end
      persist(s)
      fired = fired + 1
    elseif at then
      redis.call('ZADD', K_TIMERS, at, member)
    end
  end
end
KEEP = ''  -- a fired timer renews no session's lifetime worth a PIN renewal (persist may have set it)
return pin_steps({ fired = fired, looked_at = #due })
