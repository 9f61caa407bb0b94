-- Extend the leases a worker holds: each key in KEYS whose value is the worker's token gets the
-- full lease again; any other (taken by another worker, or gone with its job's end) is left alone.
-- So a worker may name the leases it is about to take, before it knows it got them: a claim whose
-- answer is still in flight while its event loop is blocked must not lose what it claimed.
--
-- KEYS: lease keys   ARGV[1]: the worker's token   ARGV[2]: lease (ms)
-- Returns how many leases were extended.
local token, lease_ms, extended = ARGV[1], ARGV[2], 0
for _, lease in ipairs(KEYS) do
  if redis.call('GET', lease) == token then
    redis.call('PEXPIRE', lease, lease_ms)
    extended = extended + 1
  end
end
return extended
