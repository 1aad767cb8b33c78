-- The partition step of a PIN lookup (store.py: the bucket step found that ARGV[2] owns PIN ARGV[1]; ARGV[3] is
-- "1" when the bucket is hot, past C.pin_miss_limit failed lookups). Returns ResolveResult {session} or {error},
-- with retired = true when this lookup retired the PIN (an event for the outbox). Errors:
-- pin_retired, agent_limit, pin_not_ready, or gone (the session ended or expired: a miss, counted by the step after).

local pin, sid, hot = ARGV[1], ARGV[2], ARGV[3] == '1'
local s = load(sid)
if not s or s.state == 'ended' then return { error = 'gone' } end
-- The PIN is reserved for this session, which does not show it yet (a custom PIN the SDK has not confirmed, or a
-- pincode_updated still on its way): it exists, so it is no miss.
if s.pin ~= pin then return { error = 'pin_not_ready' } end
if hot and retire_pin(s) then return { error = 'pin_retired', retired = true } end
if s.pin_retired == '1' then return { error = 'pin_retired' } end
if agents(s) >= C.max_agents then return { error = 'agent_limit' } end
return { session = view(s) }
