-- `state.update`'s write: set one field of a group's hash only if it still holds what was read,
-- so writers of other keys in the group never make an update start over.
--
-- KEYS[1]: the group's hash   KEYS[2] (traced updates only): the key's change list
-- ARGV[1]: the key (hash field)   ARGV[2]: '1' if a value was read, '0' if the key was absent
-- ARGV[3]: the value read (ignored when ARGV[2] is '0')   ARGV[4]: the new value
-- ARGV[5..7] (traced updates only): the change entry, entries the list keeps, its time to live (s)
--
-- Returns 1 when written, 0 when the key changed since it was read.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (ARGV[2] == '0' and current == false) or (ARGV[2] == '1' and current == ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  if ARGV[5] then
    redis.call('LPUSH', KEYS[2], ARGV[5])
    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
    redis.call('EXPIRE', KEYS[2], ARGV[7])
  end
  return 1
end
return 0
