-- Apply a batch of events to one session: dedupe (page seq, or id; below), transition, history, outbox, timers.
-- ARGV[1] session id, ARGV[2] source (beacon|webhook|api), ARGV[3] JSON list of normalised events
-- {id, name, ts, seq, pin?, code?, reason?, original_name?}; event names were validated by the caller.
-- ARGV[4] "" or a JSON object {pin: true|false}: whether the PIN step before claimed each reported PIN for this
-- session (a PIN it could not claim is a conflict).
-- Returns ApplyResult {accepted, duplicates, ignored, state, release?, keep?} or {error = "not_found"}; nothing is
-- written for an unknown session.

local sid, source = ARGV[1], ARGV[2]
local events = cjson.decode(ARGV[3])
local CLAIMS = ARGV[4] ~= '' and cjson.decode(ARGV[4]) or {}
local s = load(sid)
if not s then return { error = 'not_found' } end

local suffix = (source == 'webhook') and '_w' or '_b'

-- Registers ordered by the client's (ts, seq): a stale value never overwrites a newer one.
local function newer(field, ev)
  local ts, seq = tonumber(ev.ts) or 0, tonumber(ev.seq) or 0
  local pts, pseq = n(s, field .. '_ts'), n(s, field .. '_seq')
  if ts > pts or (ts == pts and seq > pseq) then
    s[field .. '_ts'] = ts
    s[field .. '_seq'] = seq
    return true
  end
  return false
end

local function incr(field) s[field] = n(s, field) + 1 end

-- ------------------------------------------------------------------------------------------------- dedupe
-- Exact, in a few hash fields instead of a set of every id (issue 8: that set, mostly heartbeat ids, made an hour
-- of session cost 20 KB). A page numbers its events (seq: monotonic per page, kept across reloads by beacon.js in
-- sessionStorage) and stamps them (ts), so for beacons a high-water mark (hw_seq, hw_ts) and the runs of seqs still
-- missing below it (gaps "lo-hi,...", the last C.dedupe_window runs) tell exactly what was applied: above the mark
-- is new, a seq in a gap is a late event (new, once), anything else below the mark is a repeat. A seq below the mark
-- (or at it) with a later ts comes from a new page whose count restarted (no sessionStorage); one above the mark with an
-- earlier ts from the page before it (unknowable, so never applied twice). Other events (webhooks, API, a beacon
-- with seq 0) are few: the last RECENT_IDS of them, in ``dd``, each as 12 hex digits of its id's SHA-1 (48 bits: a
-- collision within one session's window is out of reach, and a client can only collide with its own events).

local RECENT_IDS = 64

local function keep_last(list, max)
  while #list > max do table.remove(list, 1) end
  return list
end

local function int(x) return string.format('%.0f', x) end  -- tostring would write 1e+15 past 14 digits

local function gap_runs()
  local out = {}
  for lo, hi in string.gmatch(s.gaps or '', '(%d+)-(%d+)') do out[#out + 1] = { tonumber(lo), tonumber(hi) } end
  return out
end

local function save_gaps(runs)
  local parts = {}
  for i, run in ipairs(keep_last(runs, C.dedupe_window)) do parts[i] = int(run[1]) .. '-' .. int(run[2]) end
  s.gaps = table.concat(parts, ',')
end

local function page_event_is_new(seq, ts)
  local hw, hw_ts = n(s, 'hw_seq'), n(s, 'hw_ts')
  if seq > hw and ts < hw_ts then return false end
  -- The same seq with another ts is another event, so also a new page (a resend keeps its ts).
  if seq > hw or ts > hw_ts then
    local new_page = seq <= hw
    local runs = new_page and {} or gap_runs()  -- the old page's gaps mean nothing to a new one
    local from = new_page and 1 or hw + 1
    if seq > from then runs[#runs + 1] = { from, seq - 1 } end
    s.hw_seq, s.hw_ts = int(seq), int(ts)
    save_gaps(runs)
    return true
  end
  local runs = gap_runs()
  for i, run in ipairs(runs) do
    if seq >= run[1] and seq <= run[2] then
      table.remove(runs, i)
      if seq < run[2] then table.insert(runs, i, { seq + 1, run[2] }) end
      if seq > run[1] then table.insert(runs, i, { run[1], seq - 1 }) end
      save_gaps(runs)
      return true
    end
  end
  return false
end

local function is_new(ev)
  local seq = tonumber(ev.seq) or 0
  if source == 'beacon' and seq > 0 then return page_event_is_new(seq, tonumber(ev.ts) or 0) end
  local mark = string.sub(redis.sha1hex(ev.id), 1, 12)
  local recent = {}
  for id in string.gmatch(s.dd or '', '%x+') do
    if id == mark then return false end
    recent[#recent + 1] = id
  end
  recent[#recent + 1] = mark
  s.dd = table.concat(keep_last(recent, RECENT_IDS), ' ')
  return true
end

-- Beacons that prove the page is there: they bring an away session back (``resumed``) when they are newer than
-- what sent it away, and advance the page register either way (so a late page_hidden cannot undo them).
local PAGE_IS_BACK = { page_visible = true, session_started = true, heartbeat = true, pincode_updated = true }

local function resumes(ev)
  if source ~= 'beacon' or not PAGE_IS_BACK[ev.name] or s.state == 'ended' then return false end
  return newer('page', ev) and s.away == '1'
end

-- Returns (event type, data) for a change, (nil, nil, reason) for an ignored event, nothing for a no-op.
local function step(ev)
  local name = ev.name
  if s.state == 'ended' then return nil, nil, 'session_ended' end
  if name == 'session_ended' then
    finish(s, ev.reason or 'ended_in_sdk')
    return 'ended', { reason = s.ended_reason, by = ev.by }
  elseif name == 'pincode_updated' then
    local pin = ev.pin
    if not newer('pin', ev) then return nil, nil, 'stale' end
    if pin == s.pin then return end
    if not CLAIMS[pin] then return nil, { pin = pin }, 'pin_conflict' end
    local old = s.pin
    -- Released unless a claim newer than this event holds them again (a later pincode_updated on its way).
    release_later(s, old, tonumber(ev.ts) or 0, tonumber(ev.seq) or 0)
    if s.custom_pin ~= pin then release_later(s, s.custom_pin, tonumber(ev.ts) or 0, tonumber(ev.seq) or 0) end
    s.pin = pin
    s.pin_retired = '0'
    return set(old) and 'pin_changed' or 'pin_assigned', { pin = pin, previous = old }
  elseif name == 'agent_joined' then
    if count(s, 'a', suffix) >= C.max_agents then return nil, nil, 'agent_limit' end
    incr('aj' .. suffix)
    return 'agent_joined', {}
  elseif name == 'agent_left' then
    incr('al' .. suffix)
    return 'agent_left', {}
  elseif name == 'customer_joined' then
    if count(s, 'c', '_w') >= C.max_customers then return nil, nil, 'customer_limit' end
    incr('cj_w')
    return 'customer_joined', {}
  elseif name == 'customer_left' then
    incr('cl_w')
    return 'customer_left', {}
  elseif name == 'session_reconnecting' or name == 'page_hidden' then
    -- A tab merely hidden is still there (it keeps its place and its offers); unload, bfcache and the SDK's
    -- reconnect mean the customer is away. A page_hidden without a reason is taken as away (older beacon.js).
    if name == 'page_hidden' and ev.reason == 'hidden' then return end
    if not newer('page', ev) then return nil, nil, 'stale' end
    if s.away == '1' then return end
    s.away = '1'
    s.away_since = NOW
    return 'reconnecting', { cause = name }
  elseif name == 'session_started' then
    if s.started == '1' then return end
    s.started = '1'
    return 'session_started', {}
  elseif name == 'page_visible' or name == 'heartbeat' then
    return  -- their only effect, resuming an away page, is taken care of before step()
  elseif name == 'session_error' then
    return 'error', { code = ev.code }
  elseif name == 'remote_assist_started' or name == 'remote_assist_stopped' then
    local on = (name == 'remote_assist_started') and '1' or '0'
    if s.remote_assist == on then return end
    s.remote_assist = on
    return name, {}
  elseif name == 'unknown_sdk_event' then
    return 'sdk_event', { original_name = ev.original_name }
  end
  return nil, nil, 'unsupported'
end

local accepted, duplicates, ignored = 0, 0, 0
for _, ev in ipairs(events) do
  -- An ended session keeps no dedupe state (it shrank to its summary): a late event is recorded as ignored.
  if s.state ~= 'ended' and not is_new(ev) then
    duplicates = duplicates + 1
  else
    accepted = accepted + 1
    local prev = s.state
    local event_id = sid .. ':' .. ev.id
    if resumes(ev) then
      s.away = '0'
      commit(s, event_id .. ':resumed', 'resumed', source, prev, { cause = ev.name })
      prev = s.state
    end
    local etype, data, reason = step(ev)
    if reason then
      ignored = ignored + 1
      record_ignored(s, event_id, ev.name, source, reason, data)
      if reason == 'pin_conflict' then emit(s, event_id, 'pin_conflict', source, prev, data) end
    elseif etype or derive(s) ~= prev then
      commit(s, event_id, etype or 'state_changed', source, prev, data)
    end
  end
end

-- A PIN claimed for this batch that the session does not hold in the end (a stale or ignored event, or an end):
-- released, unless a newer claim holds it.
for _, ev in ipairs(events) do
  if ev.name == 'pincode_updated' and CLAIMS[ev.pin] and (ev.pin ~= s.pin or s.state == 'ended') then
    release_later(s, ev.pin, tonumber(ev.ts) or 0, tonumber(ev.seq) or 0, s.state == 'ended')
  end
end

if source == 'beacon' and s.state ~= 'ended' then s.last_seen = NOW end
persist(s)
return pin_steps({ accepted = accepted, duplicates = duplicates, ignored = ignored, state = s.state })
