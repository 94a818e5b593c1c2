-- Apply Plans (engine/store/base.py), each atomically and in order: the whole hot
-- path of many events in one call (one plan per call on Redis Cluster).
--
-- KEYS     Plan.keys of every plan, one plan after the other. In a plan's keys: [1]
--          event result (dedupe), [2] profile hash, [3] unlocks hash, [4] outbox
--          stream, then the keys its ops use.
-- ARGV[1]  the pub/sub channel new unlocks are published on
-- ARGV[2]  the number of shapes, then each shape: its length n and n arguments, which
--          are c and c constants, then its ops (below)
-- then per plan: shape number (from 1), key count, player id, profile version the
--          plan was built on, dedupe TTL in seconds (0: keep the event result forever),
--          argument count a, then its a Plan.args
--
-- Ops (engine/store/redis.py `_flatten`), k a key index in the plan (from 0, as in
-- Python), r a register (op number from 0), v a value: the plan's argument v when
-- v > 0, the shape's constant -v when v < 0, the empty string (a marker) when 0:
--   a k v expire_at         add          m k v expire_at    max
--   d k v expire_at         distinct     g k                get       c k    card
--   s k period r min freeze_max earn_every                             streak
--   C field n (r threshold)×n m (required)×m v x (field v)×x           claim
--
-- Returns two strings per plan: status ("ok", "duplicate", "stale" or "error") and
-- payload: the JSON list of the plan's new outbox entries [outbox id, unlock key,
-- unlock] (a duplicate's as first recorded), or the error message.
--
-- Shapes are decoded once per call and shared by the plans that use them, so a plan
-- costs only its keys and arguments. Registers nothing reads are not computed and
-- reads wait until a condition needs them. A command failing in a plan (a key of the
-- wrong type) fails that plan alone, without recording its event; Redis does not
-- roll back its earlier commands. Nothing here builds a key name: every key arrives
-- in KEYS, so prefixes and Redis Cluster slots stay the caller's business.

local call, tonumber, type = redis.call, tonumber, type

-- The plan being applied: its ops, where its keys and arguments start, its registers,
-- its new outbox entries and the unlock fields known to be present.
local ops, kb, base, R, entries, have, unlocks, outbox

local function decode(first)
  local last = first + tonumber(ARGV[first])
  local consts = {}
  local a = first + 1
  for j = 1, tonumber(ARGV[a]) do
    consts[j] = ARGV[a + j]
  end
  a = a + #consts + 1
  local function value(text)
    local v = tonumber(text)
    if v > 0 then
      return v
    end
    return v < 0 and consts[-v] or ''
  end
  local function expiry(text)
    return text ~= '0' and text
  end
  local shape, needed = {}, {}
  while a <= last do
    local code, op = ARGV[a], nil
    if code == 'a' or code == 'm' or code == 'd' then
      op = {code, tonumber(ARGV[a + 1]) + 1, value(ARGV[a + 2]), expiry(ARGV[a + 3])}
      a = a + 4
    elseif code == 'g' or code == 'c' then
      op = {code, tonumber(ARGV[a + 1]) + 1}
      a = a + 2
    elseif code == 's' then
      local r = tonumber(ARGV[a + 3]) + 1
      needed[r] = true
      op = {code, tonumber(ARGV[a + 1]) + 1, tonumber(ARGV[a + 2]), r,
            tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])}
      a = a + 7
    elseif code == 'C' then
      local field, conds, requires, extras = ARGV[a + 1], {}, {}, {}
      a = a + 3
      for j = 1, tonumber(ARGV[a - 1]) do
        local r = tonumber(ARGV[a]) + 1
        needed[r] = true
        conds[j] = {r, tonumber(ARGV[a + 1])}
        a = a + 2
      end
      for j = 1, tonumber(ARGV[a]) do
        requires[j] = ARGV[a + j]
      end
      a = a + #requires + 1
      local unlock = value(ARGV[a])
      local x = tonumber(ARGV[a + 1])
      a = a + 2
      for j = 1, x do
        extras[j] = {ARGV[a], value(ARGV[a + 1])}
        a = a + 2
      end
      op = {code, field, conds, requires, unlock, extras}
    else
      error('unknown plan operation: ' .. tostring(code))
    end
    shape[#shape + 1] = op
  end
  -- A read whose register is needed waits for its first use, unless a later op
  -- writes its key; one nobody needs is skipped. A distinct op only counts its set
  -- when someone needs the count (or to tell that it created the set).
  for i, op in ipairs(shape) do
    local code = op[1]
    if code == 'd' then
      op[5] = needed[i] or false
    elseif code == 'g' or code == 'c' then
      op[3] = needed[i] and 'lazy' or 'skip'
      for j = i + 1, needed[i] and #shape or 0 do
        local later = shape[j][1]
        if (later == 'a' or later == 'm' or later == 'd') and shape[j][2] == op[2] then
          op[3] = 'now'
          break
        end
      end
    end
  end
  return shape, last + 1
end

local function resolve(v)
  if type(v) == 'number' then
    return ARGV[base + v]
  end
  return v
end

local function read(op)
  local key = KEYS[kb + op[2]]
  if op[1] == 'g' then
    return tonumber(call('GET', key)) or 0
  end
  return call('SCARD', key)
end

local function register(r)
  local value = R[r]
  if value == nil then
    value = read(ops[r])
    R[r] = value
  end
  return value
end

local function present(field)
  if have[field] then
    return true
  end
  if call('HEXISTS', unlocks, field) == 1 then
    have[field] = true
    return true
  end
  return false
end

-- Set an unlocks field if absent (a marker when `unlock` is empty, stored as "").
-- A newly set unlock goes to the outbox. Returns whether it was newly set.
local function grant(field, unlock)
  if present(field) then
    return false
  end
  call('HSET', unlocks, field, unlock)
  have[field] = true
  if unlock ~= '' then
    local id = call('XADD', outbox, '*', 'k', field, 'u', unlock)
    entries[#entries + 1] = {id, field, unlock}
  end
  return true
end

local function claim(op)
  local conds, requires = op[3], op[4]
  for j = 1, #conds do
    if register(conds[j][1]) < conds[j][2] then
      return 0
    end
  end
  for j = 1, #requires do
    if not present(requires[j]) then
      return 0
    end
  end
  if not grant(op[2], resolve(op[5])) then
    return 0
  end
  local extras = op[6]
  for j = 1, #extras do
    grant(extras[j][1], resolve(extras[j][2]))
  end
  return 1
end

local function streak(key, period, reached, freeze_max, earn_every)
  local state = call('HMGET', key, 'last', 'current', 'longest', 'freezes')
  local current = tonumber(state[2]) or 0
  local last = tonumber(state[1])
  if not reached or (last and period <= last) then
    return current
  end
  local freezes = tonumber(state[4]) or 0
  local gap = last and (period - last - 1)
  if gap and gap <= freezes then
    freezes = freezes - gap
    current = current + 1
  else
    current = 1
  end
  local longest = math.max(tonumber(state[3]) or 0, current)
  if earn_every > 0 and current % earn_every == 0 and freezes < freeze_max then
    freezes = freezes + 1
  end
  call('HSET', key, 'last', period, 'current', current, 'longest', longest, 'freezes', freezes)
  return current
end

local function run(player, version, ttl)
  local event = KEYS[kb + 1]
  local stored = call('GET', event)
  if stored then
    return 'duplicate', stored
  end
  if (call('HGET', KEYS[kb + 2], 'version') or '0') ~= version then
    return 'stale', ''
  end
  unlocks, outbox = KEYS[kb + 3], KEYS[kb + 4]
  R, entries, have = {}, {}, {}
  for i = 1, #ops do
    local op = ops[i]
    local code = op[1]
    if code == 'C' then
      R[i] = claim(op)
    elseif code == 'a' then
      local key, v = KEYS[kb + op[2]], resolve(op[3])
      local result = call('INCRBY', key, v)
      if op[4] and result == tonumber(v) then
        call('EXPIREAT', key, op[4])
      end
      R[i] = result
    elseif code == 'm' then
      local key, v = KEYS[kb + op[2]], resolve(op[3])
      local candidate = tonumber(v)
      local current = tonumber(call('GET', key))
      if current == nil then
        if op[4] then
          call('SET', key, v, 'EXAT', op[4])
        else
          call('SET', key, v)
        end
        current = candidate
      elseif candidate > current then
        call('SET', key, v, 'KEEPTTL')
        current = candidate
      end
      R[i] = current
    elseif code == 'd' then
      local key = KEYS[kb + op[2]]
      local added = call('SADD', key, resolve(op[3]))
      if op[5] or (added == 1 and op[4]) then
        local size = call('SCARD', key)
        if added == 1 and size == 1 and op[4] then
          call('EXPIREAT', key, op[4])
        end
        R[i] = size
      end
    elseif code == 's' then
      R[i] = streak(KEYS[kb + op[2]], op[3], register(op[4]) >= op[5], op[6], op[7])
    elseif op[3] == 'now' then
      R[i] = read(op)
    end
  end
  -- cjson encodes an empty table as {}, so the empty list is spelled out.
  local payload = '[]'
  if #entries > 0 then
    payload = cjson.encode(entries)
  end
  if ttl ~= '0' then
    call('SET', event, payload, 'EX', ttl)
  else
    call('SET', event, payload)
  end
  if #entries > 0 then
    call('PUBLISH', ARGV[1], '{"p":' .. cjson.encode(player) .. ',"e":' .. payload .. '}')
  end
  return 'ok', payload
end

local shapes, a = {}, 3
for s = 1, tonumber(ARGV[2]) do
  shapes[s], a = decode(a)
end
local results, argc = {}, #ARGV
kb = 0
while a <= argc do
  ops, base = shapes[tonumber(ARGV[a])], a + 5
  local ok, status, payload = pcall(run, ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  if not ok then
    payload = type(status) == 'table' and status.err or tostring(status)
    status = 'error'
  end
  results[#results + 1] = status
  results[#results + 1] = payload
  kb = kb + tonumber(ARGV[a + 1])
  a = base + tonumber(ARGV[base]) + 1
end
return results
