-- Retire PIN ARGV[1] of session ARGV[2] (its bucket went hot: store.py's PIN step listed its owners), if the
-- session is live and still has that PIN. Returns RetireResult {retired}.

local pin, sid = ARGV[1], ARGV[2]
local s = load(sid)
if not s or s.state == 'ended' or s.pin ~= pin then return { retired = false } end
return { retired = retire_pin(s) }
