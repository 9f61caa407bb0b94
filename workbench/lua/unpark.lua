-- Put parked jobs (of a step just resumed) back in the queue at their due times; a job that is no
-- longer parked (cancelled, purged, moved back by someone else) is left alone.
--
-- KEYS[1]: the parked jobs   KEYS[2]: the queue   ARGV: the job ids
-- Returns how many were moved back.
local parked, queue, moved = KEYS[1], KEYS[2], 0
for _, id in ipairs(ARGV) do
  local score = redis.call('ZSCORE', parked, id)
  if score then
    redis.call('ZREM', parked, id)
    redis.call('ZADD', queue, score, id)
    moved = moved + 1
  end
end
return moved
