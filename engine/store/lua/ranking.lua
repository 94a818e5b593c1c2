-- Read a leaderboard (engine/store/base.py Store.ranking) in one consistent state.
--
-- KEYS[1]  the board: a sorted set of player id -> negated score, so that ascending
--          order is highest score first and equal scores in player id order
-- ARGV[1]  how many entries from the top (0: none)
-- ARGV[2]  the player to read around ('' for none)
-- ARGV[3]  how many neighbours either side of that player
--
-- Returns {size, top, start, around}: the board's size; its first entries as a flat
-- list of member, score; the 0-based rank of the first entry of `around` (-1 when the
-- player is not on the board); the player and neighbours as a flat list.

local board, first, player, width = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local top, start, around = {}, -1, {}
if first > 0 then
  top = redis.call('ZRANGE', board, 0, first - 1, 'WITHSCORES')
end
if player ~= '' then
  local rank = redis.call('ZRANK', board, player)
  if rank then
    start = math.max(0, rank - width)
    around = redis.call('ZRANGE', board, start, rank + width, 'WITHSCORES')
  end
end
return {redis.call('ZCARD', board), top, start, around}
