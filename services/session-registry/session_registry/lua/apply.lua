-- Apply a batch of events to one session: dedupe by event id, transition, history, outbox, timers.
-- ARGV[1] session id, ARGV[2] source (beacon|webhook|api), ARGV[3] JSON list of normalised events
-- {id, name, ts, seq, pin?, code?, reason?, original_name?}; event names were validated by the caller.
-- Returns JSON {accepted, duplicates, ignored, state} or {error = "not_found"}; nothing is written for an unknown
-- session.

local sid, source = ARGV[1], ARGV[2]
local events = cjson.decode(ARGV[3])
local s = load(sid)
if not s then return cjson.encode({ error = 'not_found' }) end

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
    local owner = redis.call('GET', k_pin(pin))
    if owner and owner ~= sid then return nil, { pin = pin }, 'pin_conflict' end
    local old = s.pin
    release_pin(s, old)
    if set(s.custom_pin) and s.custom_pin ~= pin then release_pin(s, s.custom_pin) end
    redis.call('SET', k_pin(pin), sid, 'PX', C.session_ttl_ms)
    redis.call('SADD', k_bucket(bucket_of(pin)), pin)
    redis.call('PEXPIRE', k_bucket(bucket_of(pin)), C.session_ttl_ms)
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
  if redis.call('SADD', k_seen(sid), ev.id) == 0 then
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

if source == 'beacon' and s.state ~= 'ended' then s.last_seen = NOW end
persist(s)
return cjson.encode({ accepted = accepted, duplicates = duplicates, ignored = ignored, state = s.state })
