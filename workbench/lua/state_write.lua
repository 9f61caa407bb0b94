-- `ctx.state`'s set, delete and increment inside a traced span: the write, the value it replaced
-- (so the span can show before → after without a second round trip), and the key's list of the
-- spans that changed it (the State page's "changed by"), capped and expiring.
--
-- KEYS[1]: the group's hash   KEYS[2]: the key's change list   KEYS[3]: the list of groups (set)
-- ARGV[1]: 'set' | 'delete' | 'increment'   ARGV[2]: the key (hash field)
-- ARGV[3]: the value (set) or the amount (increment)   ARGV[4]: the change entry ('' to write none)
-- ARGV[5]: entries a change list keeps   ARGV[6]: its time to live (s)
-- ARGV[7]: the group's name, to add to the list of groups ('' when it is listed already)
--
-- Returns the value replaced (set), the value deleted (delete; nil for both when the key was
-- absent) or the new number (increment). A deleted key's change list goes with it.
local op, field = ARGV[1], ARGV[2]
local result
if op == 'set' then
  result = redis.call('HGET', KEYS[1], field)
  redis.call('HSET', KEYS[1], field, ARGV[3])
elseif op == 'delete' then
  result = redis.call('HGET', KEYS[1], field)
  if result then
    redis.call('HDEL', KEYS[1], field)
    redis.call('DEL', KEYS[2])
  end
  return result
elseif op == 'increment' then
  result = redis.call('HINCRBY', KEYS[1], field, ARGV[3])
else
  return redis.error_reply('state_write: unknown op ' .. op)
end
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[4])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
if ARGV[7] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[7])
end
return result
