-- The registry's Lua library: the state machine shared by the partition scripts (store.py puts it between the
-- prelude of shared.scripts, which gives NOW in ms, the constants C and the key functions of the partition keyspace
-- built from KEYS[1], and each script's body). A beacon batch, a webhook, an API call and a firing timer all change
-- a session in one atomic step with its outbox entry, in the session's partition slot.
--
-- PINs live in their own slots (store.py's PIN steps): a script here never touches a PIN key. It learns which PINs
-- the step before claimed for it (CLAIMS) and lists the PINs to release (RELEASES) and to renew (KEEP) for the step
-- after.

local function n(s, field) return tonumber(s[field]) or 0 end
local function set(v) return v ~= nil and v ~= '' end

-- What each session looked like when loaded, so that save() and sync_timers() write only what changed.
local ORIGINAL = {}
local HISTORY_GREW = {}

local function load(sid)
  local flat = redis.call('HGETALL', k_session(sid))
  if #flat == 0 then return nil end
  local s, original = {}, {}
  for i = 1, #flat, 2 do
    s[flat[i]] = flat[i + 1]
    original[flat[i]] = flat[i + 1]
  end
  ORIGINAL[sid] = original
  return s
end

local function save(s)
  local original = ORIGINAL[s.id] or {}
  local flat = {}
  for k, v in pairs(s) do
    v = tostring(v)
    if original[k] ~= v then
      flat[#flat + 1] = k
      flat[#flat + 1] = v
      original[k] = v
    end
  end
  ORIGINAL[s.id] = original
  if #flat > 0 then redis.call('HSET', k_session(s.id), unpack(flat)) end
end

-- Each source observes the same people, so the best estimate is the larger count, never the sum.
-- joins - leaves makes the count independent of the order in which joins and leaves arrive.
local function count(s, prefix, suffix) return math.max(0, n(s, prefix .. 'j' .. suffix) - n(s, prefix .. 'l' .. suffix)) end
local function agents(s) return math.max(count(s, 'a', '_b'), count(s, 'a', '_w')) end
local function customers(s)
  local page = (s.started == '1' and s.away ~= '1' and s.state ~= 'ended') and 1 or 0
  return math.max(page, count(s, 'c', '_w'))
end

-- The state is derived from facts that do not depend on arrival order (counters, seq-ordered registers, the
-- final end mark), so a late or reordered event can only change a fact, never leave a wrong state behind.
local function derive(s)
  if set(s.ended_at) then return 'ended' end
  if s.away == '1' then return 'reconnecting' end
  if not set(s.pin) then return 'created' end
  if agents(s) > 0 then return 'active' end
  return 'waiting'
end

local function view(s)
  return {
    session_id = s.id,
    state = s.state,
    pin = set(s.pin) and s.pin or cjson.null,
    queue = s.queue,
    priority = n(s, 'priority'),
    customer_name = s.customer_name or '',
    agents = agents(s),
    customers = customers(s),
    created_at = n(s, 'created_at') / 1000,
    updated_at = n(s, 'updated_at') / 1000,
    ended_reason = set(s.ended_reason) and s.ended_reason or cjson.null,
    pin_retired = s.pin_retired == '1',
    version = n(s, 'version'),
  }
end

local function remember(s, entry)
  HISTORY_GREW[s.id] = true
  redis.call('RPUSH', k_history(s.id), cjson.encode(entry))
end

-- One accepted change: the SessionEvent goes to the partition's outbox (published to JetStream by outbox.py) and a compact
-- entry to the session's history, in the same script as the change itself. Every published event is one version
-- newer than the last (1 for ``created``): consumers order a session's events by it and drop any not newer.
local function emit(s, event_id, etype, source, prev, data)
  s.version = n(s, 'version') + 1
  local event = {
    v = 1, event_id = event_id, type = etype, source = source, at = NOW / 1000,
    prev_state = prev or cjson.null, session = view(s), data = data or {},
  }
  redis.call('XADD', K_OUTBOX, '*', 's', 'cobrowse.session.' .. s.id .. '.' .. etype, 'i', event_id,
    'd', cjson.encode(event))
  remember(s, {
    event_id = event_id, type = etype, source = source, at = event.at, from = event.prev_state, to = s.state,
    data = event.data,
  })
end

local function record_ignored(s, event_id, name, source, reason, data)
  remember(s, {
    event_id = event_id, type = name, source = source, at = NOW / 1000, from = s.state, to = s.state,
    ignored = reason, data = data or {},
  })
end

-- PINs for the step after the script: each released if the session still owns it and no claim newer than
-- (ts, seq) renewed it; ``final`` (an ended session) releases it whatever claimed it since.
local RELEASES = {}
local KEEP = ''

local function release_later(s, pin, ts, seq, final)
  if set(pin) then
    RELEASES[#RELEASES + 1] = { session_id = s.id, pin = pin, ts = ts or 0, seq = seq or 0, final = final or false }
  end
end

local function finish(s, reason)
  s.ended_at = NOW
  s.ended_reason = reason
  release_later(s, s.pin, 0, 0, true)
  release_later(s, s.custom_pin, 0, 0, true)
end

-- The releases (and renewal) a reply carries, only when there are any: a beacon's reply stays small.
local function pin_steps(reply)
  if #RELEASES > 0 then reply.release = RELEASES end
  if KEEP ~= '' then reply.keep = KEEP end
  return reply
end

-- ------------------------------------------------------------------------------------------------- timers

local KINDS = { 'no_pin', 'waiting', 'reconnect', 'agent_wait', 'heartbeat' }
local REASONS = {
  no_pin = 'no_pin_timeout', waiting = 'no_agent_timeout', reconnect = 'abandoned', agent_wait = 'agent_wait_timeout',
}

-- When the timer of ``kind`` is due for this session, or nil when it does not apply (a 0 duration disables it).
local function timer_due(s, kind)
  local ms = C[kind .. '_ms']
  if not ms or ms <= 0 then return nil end
  local st = s.state
  if kind == 'no_pin' and st == 'created' then return n(s, 'created_at') + ms end
  if kind == 'waiting' and st == 'waiting' then return n(s, 'waiting_since') + ms end
  if kind == 'reconnect' and st == 'reconnecting' and agents(s) == 0 then return n(s, 'away_since') + ms end
  if kind == 'agent_wait' and st == 'reconnecting' and agents(s) > 0 then return n(s, 'away_since') + ms end
  if kind == 'heartbeat' and n(s, 'last_seen') > 0 and (st == 'created' or st == 'waiting' or st == 'active') then
    return n(s, 'last_seen') + ms
  end
  return nil
end

-- Compares with the session as loaded, and touches only the timers whose due time moved.
local function sync_timers(s)
  local original = ORIGINAL[s.id] or {}
  for _, kind in ipairs(KINDS) do
    local due = timer_due(s, kind)
    if due ~= (original.state and timer_due(original, kind)) then
      local member = s.id .. '|' .. kind
      if due then
        redis.call('ZADD', K_TIMERS, due, member)
      else
        redis.call('ZREM', K_TIMERS, member)
      end
    end
  end
end

-- Key lifetimes are renewed at most once a minute while a session lives, and set once when it ends.
local TTL_RENEW_MS = 60000

-- The lifetime to give the session's keys now, or nil when they need no renewal.
local function lifetime(s)
  local ended = s.state == 'ended'
  if not ended and NOW - n(s, 'ttl_at') < TTL_RENEW_MS then return nil end
  if ended and (ORIGINAL[s.id] or {}).state == 'ended' then return nil end
  s.ttl_at = NOW
  return ended and C.retention_ms or C.session_ttl_ms
end

-- What an ended session no longer needs (issue 8: it is kept C.retention_ms, so it shrinks to its summary):
-- dedupe state, ordering registers and live timestamps. Nothing reads them once the end mark is set.
local LIVE_ONLY = {
  'hw_seq', 'hw_ts', 'gaps', 'dd', 'pin_ts', 'pin_seq', 'page_ts', 'page_seq', 'away_since', 'waiting_since',
  'last_seen', 'custom_pin',
}

local function shrink(s)
  local gone, original = {}, ORIGINAL[s.id] or {}
  for _, field in ipairs(LIVE_ONLY) do
    if s[field] ~= nil then
      s[field] = nil
      if original[field] ~= nil then gone[#gone + 1] = field end
      original[field] = nil
    end
  end
  if #gone > 0 then redis.call('HDEL', k_session(s.id), unpack(gone)) end
end

-- Write a changed session back: timers, history bound, the hash itself, then key lifetimes (the hash may only
-- now exist).
local function persist(s)
  sync_timers(s)
  local ttl = lifetime(s)
  local ended = s.state == 'ended'
  local limit = ended and C.ended_history_limit or C.history_limit
  if (HISTORY_GREW[s.id] or (ended and ttl)) and limit > 0 then redis.call('LTRIM', k_history(s.id), -limit, -1) end
  if ended and ttl then shrink(s) end
  save(s)
  if ttl then
    redis.call('PEXPIRE', k_session(s.id), ttl)
    redis.call('PEXPIRE', k_history(s.id), ttl)
    if set(s.pin) and s.state ~= 'ended' then KEEP = s.pin end
  end
end

local function commit(s, event_id, etype, source, prev, data)
  s.state = derive(s)
  if s.state == 'waiting' and prev ~= 'waiting' then s.waiting_since = NOW end
  s.updated_at = NOW
  emit(s, event_id, etype, source, prev, data)
end

-- Too many failed lookups near this PIN (resolve.lua, retire.lua): agents can no longer resolve it.
local function retire_pin(s)
  if s.pin_retired == '1' then return false end
  s.pin_retired = '1'
  local prev = s.state
  commit(s, s.id .. ':retired:' .. s.pin, 'pin_retired', 'api', prev, { pin = s.pin })
  persist(s)
  return true
end
