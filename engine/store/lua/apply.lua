-- Apply one Plan (engine/store/base.py) atomically: the whole hot path of one event.
--
-- KEYS     Plan.keys, in order. KEYS[1] event result (dedupe), KEYS[2] profile hash,
--          KEYS[3] unlocks hash, KEYS[4] outbox stream, then the keys the ops use.
--          An op's key index k (0-based, as in Python) is KEYS[k + 1].
-- ARGV[1]  the pub/sub channel new unlocks are published on
-- ARGV[2]  player id          ARGV[3]  profile version the plan was built on
-- ARGV[4]  dedupe TTL in seconds (0: keep the event result forever)
-- ARGV[5…] Plan.ops, flattened (engine/store/redis.py `_command`):
--            add k amount expire_at          max k value expire_at
--            distinct k member expire_at     get k          card k
--            streak k period reg min freeze_max earn_every
--            claim field n (reg threshold)×n m (required)×m unlock x (field unlock)×x
--          where an empty unlock stands for null (a marker).
--
-- Returns {status, payload}: {"duplicate", <stored entries>}, {"stale", ""} or
-- {"ok", <entries>}, entries being a JSON list of [outbox id, unlock key, unlock JSON].
--
-- The ops arrive as plain arguments rather than one JSON document because
-- cjson.decode costs more than all the ops of a typical plan together. Nothing
-- here builds a key name: every key arrives in KEYS, so prefixes and Redis
-- Cluster slots stay the caller's business.

local call = redis.call

local stored = call('GET', KEYS[1])
if stored then
  return {'duplicate', stored}
end
if (tonumber(call('HGET', KEYS[2], 'version')) or 0) ~= tonumber(ARGV[3]) then
  return {'stale', ''}
end

local unlocks, outbox = KEYS[3], KEYS[4]
local R = {}
local entries = {}

local function expire(key, at)
  if tonumber(at) > 0 then
    call('EXPIREAT', key, at)
  end
end

-- Set an unlocks field if absent (a marker when `unlock` is empty, stored as "").
-- A newly set unlock goes to the outbox. Returns 1 when newly set.
local function grant(field, unlock)
  if call('HSETNX', unlocks, field, unlock) == 0 then
    return 0
  end
  if unlock ~= '' then
    local id = call('XADD', outbox, '*', 'k', field, 'u', unlock)
    entries[#entries + 1] = {id, field, unlock}
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

-- The claim starting at ARGV[a]; returns its result and the index after it.
local function claim(a)
  local field = ARGV[a + 1]
  local met = true
  local n = tonumber(ARGV[a + 2])
  a = a + 3
  for j = a, a + 2 * (n - 1), 2 do
    if R[tonumber(ARGV[j]) + 1] < tonumber(ARGV[j + 1]) then
      met = false
      break
    end
  end
  a = a + 2 * n
  local m = tonumber(ARGV[a])
  local requires = a + 1
  a = requires + m
  local unlock = ARGV[a]
  local x = tonumber(ARGV[a + 1])
  local extras = a + 2
  local after = extras + 2 * x
  if not met then
    return 0, after
  end
  for j = requires, requires + m - 1 do
    if call('HEXISTS', unlocks, ARGV[j]) == 0 then
      return 0, after
    end
  end
  if grant(field, unlock) == 0 then
    return 0, after
  end
  for j = extras, after - 1, 2 do
    grant(ARGV[j], ARGV[j + 1])
  end
  return 1, after
end

local a, argc, i = 5, #ARGV, 0
while a <= argc do
  local name = ARGV[a]
  local result
  i = i + 1
  if name == 'claim' then
    result, a = claim(a)
  elseif name == 'add' then
    local key = KEYS[ARGV[a + 1] + 1]
    result = call('INCRBY', key, ARGV[a + 2])
    expire(key, ARGV[a + 3])
    a = a + 4
  elseif name == 'max' then
    local key = KEYS[ARGV[a + 1] + 1]
    local current = tonumber(call('GET', key))
    result = tonumber(ARGV[a + 2])
    if current and current >= result then
      result = current
    else
      call('SET', key, ARGV[a + 2], 'KEEPTTL')
    end
    expire(key, ARGV[a + 3])
    a = a + 4
  elseif name == 'distinct' then
    local key = KEYS[ARGV[a + 1] + 1]
    call('SADD', key, ARGV[a + 2])
    result = call('SCARD', key)
    expire(key, ARGV[a + 3])
    a = a + 4
  elseif name == 'get' then
    result = tonumber(call('GET', KEYS[ARGV[a + 1] + 1])) or 0
    a = a + 2
  elseif name == 'card' then
    result = call('SCARD', KEYS[ARGV[a + 1] + 1])
    a = a + 2
  elseif name == 'streak' then
    local reached = R[ARGV[a + 3] + 1] >= tonumber(ARGV[a + 4])
    result = streak(
      KEYS[ARGV[a + 1] + 1], tonumber(ARGV[a + 2]), reached,
      tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]))
    a = a + 7
  else
    return redis.error_reply('unknown plan operation: ' .. tostring(name))
  end
  R[i] = result
end

-- cjson encodes an empty table as {}, so the empty list is spelled out.
local payload = '[]'
if #entries > 0 then
  payload = cjson.encode(entries)
end
if tonumber(ARGV[4]) > 0 then
  call('SET', KEYS[1], payload, 'EX', ARGV[4])
else
  call('SET', KEYS[1], payload)
end
if #entries > 0 then
  call('PUBLISH', ARGV[1], '{"p":' .. cjson.encode(ARGV[2]) .. ',"e":' .. payload .. '}')
end
return {'ok', payload}
