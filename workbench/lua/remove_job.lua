-- Take one job out of the queue (or out of the parked jobs of paused steps) if no worker runs it:
-- a cancel of a queued job, a deferred retry or a paused step's job, or a purge. Atomic with the
-- claim script, so a job is either removed here or claimed there, never both.
--
-- KEYS[1]: the queue   KEYS[2]: the parked jobs   KEYS[3]: the job's lease   KEYS[4]: its run counter
-- KEYS[5]: its job data   KEYS[6]: its interrupted-runs counter   ARGV[1]: the job id
--
-- Returns {'running', data} while a worker holds its lease, {'gone'} when it is queued nowhere, or
-- {'removed', data, runs, interrupted runs, due ms} once it is removed with its keys.
local queue, parked, lease, tries, job, interrupts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id = ARGV[1]
if redis.call('EXISTS', lease) == 1 then
  return {'running', redis.call('GET', job)}
end
local score = redis.call('ZSCORE', queue, id)
if score then
  redis.call('ZREM', queue, id)
else
  score = redis.call('ZSCORE', parked, id)
  if not score then return {'gone'} end
  redis.call('ZREM', parked, id)
end
local data = redis.call('GET', job)
local runs = redis.call('GET', tries) or '0'
local interrupted = redis.call('GET', interrupts) or '0'
redis.call('DEL', tries, job, interrupts)
return {'removed', data, runs, interrupted, score}
