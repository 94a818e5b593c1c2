-- Apply Plans (engine/store/base.py), each atomically and in order: the whole hot
-- path of many events in one call (one plan per call on Redis Cluster).
--
-- KEYS     Plan.keys of every plan, one plan after the other. In a plan's keys: [1]
--          event result (dedupe), [2] profile hash, [3] unlocks hash, [4] outbox
--          stream, then the keys its ops use.
-- ARGV[1]  the pub/sub channel new unlocks are published on ('': none, a rebuild)
-- ARGV[2]  the number of shapes, then each shape: its number of constants c, its ops
--          as words in one string, then its c constants
-- then per plan: shape number (from 1), key count, player id, profile version the
--          plan was built on, dedupe TTL in seconds (0: keep the event result forever),
--          argument count, then its Plan.args
--
-- A shape's string starts with one byte: 1 when its words are bytes, 2 when they are
-- 16-bit big-endian; then the number of arguments its values name (a), 1 when its
-- claims may wait for the end of the plan (no op reads their results), then its ops
-- (engine/store/encoder.py `compile_shape`). k is a key index in the plan (from 0, as in
-- Python), r a register (op number from 0), n a count, and v a value: the empty
-- string (a marker's unlock) when 0, the plan's argument v up to a, the shape's
-- constant v - a after that. Each op starts with its number (`Operation.code` in
-- engine/store/ops.py, where each op's meaning is defined; a test checks the numbers
-- below against it) and the count of words that follow:
--   1 _ k v(amount) v(expire_at)             add
--   2 _ k v(value) v(expire_at)              max
--   3 _ k v(member) v(expire_at) needed      distinct (needed: 1 when its count is read)
--   4 _ k mode                               get (mode: 0 unread, 1 read when first
--   5 _ k mode                               card      needed, 2 read now)
--   6 _ k v(period) r v(min) v(freeze_max) v(earn_every)                       streak
--   7 _ v(field) n (r v(threshold))×n n v(required)×n v(unlock) n (v(field) v(unlock))×n
--                                                                              claim
--   8 _ r n (v(threshold) v(field) v(unlock) n (v(field) v(unlock))×n)×n       steps
--   9 _ k r v(expire_at)                     rank (the player on board k, score -R[r])
--
-- Returns two strings per plan: status ("ok", "duplicate", "stale" or "error") and
-- payload: the JSON list of the plan's new outbox entries [outbox id, unlock key,
-- unlock] (a duplicate's as first recorded), or the error message.
--
-- Shapes travel once per call, however many plans use them, and are read in place:
-- a plan costs its keys, its arguments and its commands. Claims that may wait are
-- settled after the plan's other ops: their conditions, then one HMGET of the unlock
-- fields the met ones would grant, then the grants in order, as if each had run in its
-- place. A command failing in a plan (a key of the wrong type) fails that plan alone,
-- without recording its event; Redis does not roll back its earlier commands. Nothing
-- here builds a key name: every key arrives in KEYS, so prefixes and Redis Cluster
-- slots stay the caller's business.

local call, tonumber = redis.call, tonumber
local ADD, MAX, DISTINCT, GET, CARD, STREAK, CLAIM, STEPS, RANK = 1, 2, 3, 4, 5, 6, 7, 8, 9

-- The shape of the plan being applied: its words, how many arguments its values name,
-- where its constants start in ARGV and its constants read as numbers so far.
local w, named, constants, numbers
-- The plan: where its keys and arguments start, its registers, where its unread reads
-- are, its new outbox entries and what is known of its unlock fields (true: present).
local kb, base, R, unread, entries, have, unlocks, outbox

local function text(v)
  if v > named then
    return ARGV[constants + v - named]
  elseif v > 0 then
    return ARGV[base + v]
  end
  return ''
end

local function number(v)
  if v > named then
    local found = numbers[v]
    if found == nil then
      found = tonumber(ARGV[constants + v - named])
      numbers[v] = found
    end
    return found
  end
  return tonumber(ARGV[base + v])
end

-- The words of a shape's string; Lua's stack bounds how many values one call of
-- string.byte returns, so long strings are read a few thousand bytes at a time.
local function words(blob)
  local width, found, n = string.byte(blob, 1), {}, 0
  for i = 2, #blob, 4000 do
    local bytes = {string.byte(blob, i, i + 3999)}
    if width == 1 then
      for j = 1, #bytes do
        found[n + j] = bytes[j]
      end
      n = n + #bytes
    else
      for j = 1, #bytes, 2 do
        n = n + 1
        found[n] = bytes[j] * 256 + bytes[j + 1]
      end
    end
  end
  return found
end

-- Register r, reading it now if its read was put off.
local function register(r)
  local value = R[r]
  if value == nil then
    local p = unread[r]
    local key = KEYS[kb + w[p + 2] + 1]
    if w[p] == GET then
      value = tonumber(call('GET', key)) or 0
    else
      value = call('SCARD', key)
    end
    R[r] = value
  end
  return value
end

local function present(field)
  local known = have[field]
  if known == nil then
    known = call('HEXISTS', unlocks, field) == 1
    have[field] = known
  end
  return known
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

-- Grant field w[p] with unlock w[u] and then the n extras from w[u + 1], when the
-- m fields required from w[q] are present: 1 when newly granted. A field already
-- present makes the requirements moot, so it is looked at first.
local function claim(p, q, m, u)
  local field = text(w[p])
  if present(field) then
    return 0
  end
  for j = q, q + m - 1 do
    if not present(text(w[j])) then
      return 0
    end
  end
  if not grant(field, text(w[u])) then
    return 0
  end
  for j = u + 2, u + 2 * w[u + 1], 2 do
    grant(text(w[j]), text(w[j + 1]))
  end
  return 1
end

local function conditional(p)
  local n = w[p + 1]
  for j = p + 2, p + 2 * n, 2 do
    if register(w[j] + 1) < number(w[j + 1]) then
      return 0
    end
  end
  local q = p + 2 + 2 * n
  local m = w[q]
  return claim(p, q + 1, m, q + 1 + m)
end

local function steps(p)
  local value, claimed = register(w[p] + 1), 0
  p = p + 2
  for _ = 1, w[p - 1] do
    if value < number(w[p]) then
      break
    end
    claimed = claimed + claim(p + 1, p + 2, 0, p + 2)
    p = p + 4 + 2 * w[p + 3]
  end
  return claimed
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

-- The unlock fields the claim or steps op at p would grant, added to `fields` when
-- its conditions are met; returns whether there were any. (What they require and
-- their extras only matter for the few not granted yet.)
local function touched(p, fields)
  local q, n = p + 2, #fields
  if w[p] == CLAIM then
    local conds = w[q + 1]
    for j = q + 2, q + 2 * conds, 2 do
      if register(w[j] + 1) < number(w[j + 1]) then
        return false
      end
    end
    fields[n + 1] = text(w[q])
  else
    local value, s = register(w[q] + 1), q + 2
    for _ = 1, w[q + 1] do
      if value < number(w[s]) then
        break
      end
      fields[#fields + 1] = text(w[s + 1])
      s = s + 4 + 2 * w[s + 3]
    end
  end
  return #fields > n
end

local function settle(waiting)
  local met, fields = {}, {}
  for j = 1, #waiting do
    if touched(waiting[j], fields) then
      met[#met + 1] = waiting[j]
    end
  end
  if #fields == 0 then
    return
  end
  local found = call('HMGET', unlocks, unpack(fields))
  for j = 1, #fields do
    have[fields[j]] = found[j] ~= false
  end
  for j = 1, #met do
    local p = met[j]
    if w[p] == CLAIM then
      conditional(p + 2)
    else
      steps(p + 2)
    end
  end
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
  R, unread, entries, have = {}, nil, {}, {}
  local defer, waiting = w[2] == 1, nil
  local p, i, last, keys = 3, 0, #w, kb + 1
  -- Ops by how often they come; an amount, value or expiry is never the empty string.
  while p <= last do
    local code, q = w[p], p + 2
    i = i + 1
    if code == ADD then
      local key, v, at = KEYS[keys + w[q]], w[q + 1], w[q + 2]
      local amount = v > named and ARGV[constants + v - named] or ARGV[base + v]
      local result = call('INCRBY', key, amount)
      at = at > named and ARGV[constants + at - named] or ARGV[base + at]
      if at ~= '0' and result == tonumber(amount) then
        call('EXPIREAT', key, at)
      end
      R[i] = result
    elseif code == DISTINCT then
      local key, v, at = KEYS[keys + w[q]], w[q + 1], w[q + 2]
      local added = call('SADD', key, v > named and ARGV[constants + v - named] or ARGV[base + v])
      at = at > named and ARGV[constants + at - named] or ARGV[base + at]
      if w[q + 3] == 1 or (added == 1 and at ~= '0') then
        local size = call('SCARD', key)
        if added == 1 and size == 1 and at ~= '0' then
          call('EXPIREAT', key, at)
        end
        R[i] = size
      end
    elseif code == RANK then
      -- Negated, so that ZRANGE puts the highest first and ties in player id order;
      -- formatted in full, as Lua would round a number argument to 14 digits.
      local key, at = KEYS[keys + w[q]], text(w[q + 2])
      local added = call('ZADD', key, string.format('%.17g', 0 - register(w[q + 1] + 1)), player)
      if added == 1 and at ~= '0' then
        call('EXPIREAT', key, at)
      end
      R[i] = added
    elseif code >= CLAIM then
      if defer then
        waiting = waiting or {}
        waiting[#waiting + 1] = p
      elseif code == CLAIM then
        R[i] = conditional(q)
      else
        R[i] = steps(q)
      end
    elseif code == MAX then
      local key, given = KEYS[keys + w[q]], text(w[q + 1])
      local candidate, current = tonumber(given), tonumber(call('GET', key))
      if current == nil then
        local at = text(w[q + 2])
        if at ~= '0' then
          call('SET', key, given, 'EXAT', at)
        else
          call('SET', key, given)
        end
        current = candidate
      elseif candidate > current then
        call('SET', key, given, 'KEEPTTL')
        current = candidate
      end
      R[i] = current
    elseif code == STREAK then
      local reached = register(w[q + 2] + 1) >= number(w[q + 3])
      R[i] = streak(
        KEYS[keys + w[q]], number(w[q + 1]), reached, number(w[q + 4]), number(w[q + 5]))
    elseif code == GET or code == CARD then
      local mode = w[q + 1]
      if mode ~= 0 then
        unread = unread or {}
        unread[i] = p
        if mode == 2 then
          R[i] = register(i)
        end
      end
    else
      error('unknown plan operation ' .. tostring(code))
    end
    p = q + w[p + 1]
  end
  if waiting then
    settle(waiting)
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
  if #entries > 0 and ARGV[1] ~= '' then
    call('PUBLISH', ARGV[1], '{"p":' .. cjson.encode(player) .. ',"e":' .. payload .. '}')
  end
  return 'ok', payload
end

-- Each shape as {its words, the ARGV index before its first constant, its numbers}.
local shapes, a = {}, 3
for s = 1, tonumber(ARGV[2]) do
  shapes[s] = {words(ARGV[a + 1]), a + 1, {}}
  a = a + 2 + tonumber(ARGV[a])
end
local results, argc = {}, #ARGV
kb = 0
while a <= argc do
  local shape = shapes[tonumber(ARGV[a])]
  w, constants, numbers, base = shape[1], shape[2], shape[3], a + 5
  named = w[1]
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
