-- Apply one Plan (engine/store/base.py) atomically: the whole hot path of one event.
--
-- KEYS     Plan.keys, in order. KEYS[1] event result (dedupe), KEYS[2] profile hash,
--          KEYS[3] unlocks hash, KEYS[4] outbox stream, then the keys the ops use.
--          An op's key index k (0-based, as in Python) is KEYS[k + 1].
-- ARGV[1]  Plan.to_json(): {"p": player id, "v": profile version, "t": dedupe TTL in
--          seconds, "o": [op, ...]}
-- ARGV[2]  the pub/sub channel new unlocks are published on
--
-- Returns {status, payload}: {"duplicate", <stored entries>}, {"stale", ""} or
-- {"ok", <entries>}, entries being a JSON list of [outbox id, unlock key, unlock JSON].
--
-- Nothing here builds a key name: every key arrives in KEYS, so prefixes and
-- Redis Cluster slots stay the caller's business.

local call = redis.call
local null = cjson.null

local stored = call('GET', KEYS[1])
if stored then
  return {'duplicate', stored}
end

local plan = cjson.decode(ARGV[1])
if tonumber(call('HGET', KEYS[2], 'version') or '0') ~= plan.v then
  return {'stale', ''}
end

local unlocks, outbox = KEYS[3], KEYS[4]
local R = {}
local entries = {}

local function expire(key, at)
  if at > 0 then
    call('EXPIREAT', key, at)
  end
end

-- Set an unlocks field if absent (a marker when `unlock` is null: stored as "").
-- A newly set unlock goes to the outbox. Returns 1 when newly set.
local function grant(field, unlock)
  if unlock == null then
    return call('HSETNX', unlocks, field, '')
  end
  if call('HSETNX', unlocks, field, unlock) == 0 then
    return 0
  end
  local id = call('XADD', outbox, '*', 'k', field, 'u', unlock)
  entries[#entries + 1] = {id, field, unlock}
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

local function claim(field, conds, requires, unlock, extras)
  for _, cond in ipairs(conds) do
    if R[cond[1] + 1] < cond[2] then
      return 0
    end
  end
  for _, required in ipairs(requires) do
    if call('HEXISTS', unlocks, required) == 0 then
      return 0
    end
  end
  if grant(field, unlock) == 0 then
    return 0
  end
  for _, extra in ipairs(extras) do
    grant(extra[1], extra[2])
  end
  return 1
end

for i, op in ipairs(plan.o) do
  local name = op[1]
  local result
  if name == 'add' then
    local key = KEYS[op[2] + 1]
    result = call('INCRBY', key, op[3])
    expire(key, op[4])
  elseif name == 'max' then
    local key = KEYS[op[2] + 1]
    local current = tonumber(call('GET', key))
    result = op[3]
    if current and current >= result then
      result = current
    else
      call('SET', key, result, 'KEEPTTL')
    end
    expire(key, op[4])
  elseif name == 'distinct' then
    local key = KEYS[op[2] + 1]
    call('SADD', key, op[3])
    result = call('SCARD', key)
    expire(key, op[4])
  elseif name == 'get' then
    result = tonumber(call('GET', KEYS[op[2] + 1]) or '0')
  elseif name == 'card' then
    result = call('SCARD', KEYS[op[2] + 1])
  elseif name == 'streak' then
    result = streak(KEYS[op[2] + 1], op[3], R[op[4] + 1] >= op[5], op[6], op[7])
  elseif name == 'claim' then
    result = claim(op[2], op[3], op[4], op[5], op[6])
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
if plan.t > 0 then
  call('SET', KEYS[1], payload, 'EX', plan.t)
else
  call('SET', KEYS[1], payload)
end
if #entries > 0 then
  call('PUBLISH', ARGV[2], '{"p":' .. cjson.encode(plan.p) .. ',"e":' .. payload .. '}')
end
return {'ok', payload}
