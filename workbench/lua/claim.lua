-- Claim due jobs among candidates the worker read from the queue, atomically: a candidate that
-- another worker took meanwhile (its lease exists), that is no longer queued, or that is not due
-- yet (a retry put it back for later) is skipped. One call claims, counts and reads each job
-- (arq spends three round trips per job before it starts one). A due job of a paused step is
-- parked instead (moved to the parked set with its due time, until the step is resumed): while
-- nothing is paused that costs one HLEN per call, nothing per job.
--
-- KEYS[1]: the queue (sorted set: job id -> due ms)   KEYS[2]: the paused steps (hash: step -> ms)
-- KEYS[3]: the parked jobs (sorted set: job id -> due ms); then four keys per candidate i, from
--   KEYS[4i]: its lease, its run counter, its job data, its interrupted-runs counter
-- ARGV[1]: now (ms)   ARGV[2]: lease (ms)   ARGV[3]: jobs wanted at most
-- ARGV[4]: run counter ttl (s)   ARGV[5]: the claiming worker's token (the value of its leases)
-- ARGV[5 + i]: candidate i's job id
--
-- Returns: how many candidates were looked at (the first ones; the rest are for another call),
-- then five items per claimed job: its candidate number, its due ms, its job data (nil once
-- expired), its run number (1 for the first), its runs interrupted by a graceful shutdown.
local queue, paused, parked = KEYS[1], KEYS[2], KEYS[3]
local now, lease_ms, want, tries_ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local token = ARGV[5]
local candidates = #ARGV - 5
if #KEYS ~= 3 + 4 * candidates then
  return redis.error_reply('claim: KEYS must be the queue, the paused steps, the parked jobs and four keys per candidate')
end
local any_paused = redis.call('HLEN', paused) > 0

-- the step a job's data names (arq's format: the payload is the first argument), or nil
local function step_of(data)
  if not data then return nil end
  local ok, job = pcall(cjson.decode, data)
  if not ok or type(job) ~= 'table' or type(job.a) ~= 'table' or type(job.a[1]) ~= 'table' then return nil end
  return job.a[1].step
end

local out, taken, looked = {0}, 0, 0
for i = 1, candidates do
  if taken >= want then break end
  looked = i
  local lease, tries, job, interrupts = KEYS[4 * i], KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3]
  local id = ARGV[5 + i]
  local score = redis.call('ZSCORE', queue, id)
  if score and tonumber(score) <= now and redis.call('EXISTS', lease) == 0 then
    local data = redis.call('GET', job)
    local step = any_paused and step_of(data)
    if step and redis.call('HEXISTS', paused, step) == 1 then
      redis.call('ZREM', queue, id)
      redis.call('ZADD', parked, score, id)
    else
      redis.call('PSETEX', lease, lease_ms, token)
      local run = redis.call('INCR', tries)
      redis.call('EXPIRE', tries, tries_ttl)
      local interrupted = 0
      if run > 1 then interrupted = tonumber(redis.call('GET', interrupts) or '0') end
      taken = taken + 1
      out[#out + 1] = i
      out[#out + 1] = score
      out[#out + 1] = data
      out[#out + 1] = run
      out[#out + 1] = interrupted
    end
  end
end
out[1] = looked
return out
