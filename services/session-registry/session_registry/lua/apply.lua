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
    if not newer('page', ev) then return nil, nil, 'stale' end
    if s.away == '1' then return end
    s.away = '1'
    s.away_since = NOW
    return 'reconnecting', { cause = name }
  elseif name == 'session_started' or name == 'page_visible' then
    local etype = nil
    if name == 'session_started' and s.started ~= '1' then
      s.started = '1'
      etype = 'session_started'
    end
    if source == 'beacon' and newer('page', ev) and s.away == '1' then
      s.away = '0'
      return 'resumed', { cause = name }
    end
    return etype, {}
  elseif name == 'heartbeat' then
    -- A page that still beats is alive, only hidden: its reconnect window starts again.
    if s.away == '1' and newer('page', ev) then s.away_since = NOW end
    return
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
