-- Write a batch of trace records in one call: the traces' hashes, spans, events and logs, and the
-- live feed, so what the browser sees live and what a reload shows can never disagree.
--
-- KEYS[1]: the live feed (stream)   KEYS[2]: the log stream   KEYS[3]: the trace index (zset)
-- KEYS[4]: the failed-trace index (zset)   KEYS[5]: the two streams' entry sizes (hash: feed, logs)
--   then four keys per trace of the batch, in the order the traces first appear in the records, from
--   KEYS[4t + 2]: its hash, its spans (hash), its events (list), the ids of its lines in the log
--   stream (list)
-- ARGV[1]: feed length cap   ARGV[2]: log stream length cap   ARGV[3]: the records (msgpack array)
-- ARGV[4]: feed size cap (bytes)   ARGV[5]: log stream size cap (bytes); 0 or absent: none
--
-- Each record is an array whose first item names its kind:
--   T trace opened:   trace, start, entry, kind, label, open
--   S span put:       trace, span id, span json, open delta, failed delta, errors delta, ts, step, error
--   E event added:    trace, event kind, event json
--   A trace adjusted: trace, open delta, failed delta, ts
-- Spans and events go to the feed as they are; each trace touched gets its counters updated and ONE
-- summary pushed to the feed at the end of the batch, however many records touched it.
--
-- Size caps: each stream's length cap is lowered to what its size cap holds at the entries' average
-- size (a running average kept in KEYS[5], updated once per batch; a batch of bigger entries than
-- that lowers the cap at once), so XADD's own trimming keeps the stream under both caps: two extra
-- commands per batch, none per record.
--
-- A full Redis (maxmemory, noeviction) refuses a script only at its first write that may grow memory,
-- before it has changed anything; once it has written, Redis lets it finish. So a batch is written
-- whole or not at all, and the recorder may re-queue a refused one: keep the first write one that
-- Redis refuses when full (no DEL, XTRIM or ZREM before it), or a full Redis would take the batch.
-- Returns the number of records written.
local feed, logs, traces_index, failed_index, sizes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local records = cmsgpack.unpack(ARGV[3])
local NTRACE = 5  -- keys before the traces' own
-- each trace's keys, in the order the traces first appear (checked before anything is written)
local touched, order = {}, {}
local feed_n, feed_b, logs_n, logs_b = 0, 0, 0, 0  -- this batch's stream entries and their bytes
for _, r in ipairs(records) do
  local tid = r[2]
  if not touched[tid] then
    local k = NTRACE + 4 * #order
    touched[tid] = {open = 0, failed = 0, errors = 0, ts = 0, steps = {}, err = '',
                    trace = KEYS[k + 1], spans = KEYS[k + 2], events = KEYS[k + 3], logids = KEYS[k + 4]}
    table.insert(order, tid)
  end
  if r[1] == 'S' then
    feed_n, feed_b = feed_n + 1, feed_b + #r[4]
  elseif r[1] == 'E' then
    feed_n, feed_b = feed_n + 1, feed_b + #r[4]
    if r[3] == 'log' then logs_n, logs_b = logs_n + 1, logs_b + #r[4] end
  end
end
if #KEYS ~= NTRACE + 4 * #order then
  return redis.error_reply('apply_records: KEYS must hold four keys per trace of the batch')
end

-- what an entry of `n` bytes takes in a stream (measured with MEMORY USAGE: ~35 bytes for small
-- entries, ~350 plus 1-10 % for big ones)
local function cost(n) return n + n / 8 + 64 end
local WINDOW = 1000  -- entries the running average is taken over
local known = redis.call('HMGET', sizes, 'feed', 'logs')
-- the length cap that keeps a stream within `budget` bytes, for entries of average size `avg`
local function length_cap(maxlen, budget, avg, n, b)
  if budget <= 0 then return maxlen end
  local a = avg
  if n > 0 and cost(b / n) > a then a = cost(b / n) end
  if a <= 0 then return maxlen end
  return math.max(1, math.min(maxlen, math.floor(budget / a)))
end
local feed_avg, logs_avg = tonumber(known[1]) or 0, tonumber(known[2]) or 0
-- as strings, made once: Redis would format a number again for every XADD
local feed_max = string.format('%d', length_cap(tonumber(ARGV[1]), tonumber(ARGV[4]) or 0, feed_avg, feed_n, feed_b))
local logs_max = string.format('%d', length_cap(tonumber(ARGV[2]), tonumber(ARGV[5]) or 0, logs_avg, logs_n, logs_b))
for _, r in ipairs(records) do
  local kind, tid = r[1], r[2]
  local t = touched[tid]
  local trace = t.trace
  if kind == 'T' then
    local start = r[3]
    redis.call('HSET', trace, 'id', tid, 'entry', r[4], 'kind', r[5], 'label', r[6])
    local s = redis.call('HGET', trace, 'start')
    if (not s) or tonumber(s) > start then redis.call('HSET', trace, 'start', string.format('%d', start)) end
    redis.call('ZADD', traces_index, 'NX', start, tid)
    t.open = t.open + r[7]
    if start > t.ts then t.ts = start end
  elseif kind == 'S' then
    if redis.call('HSET', t.spans, r[3], r[4]) == 1 then
      redis.call('HINCRBY', trace, 'spans', 1)
    end
    redis.call('XADD', feed, 'MAXLEN', '~', feed_max, '*', 't', 'span', 'd', r[4])
    t.open = t.open + r[5]
    t.failed = t.failed + r[6]
    t.errors = t.errors + r[7]
    if r[8] > t.ts then t.ts = r[8] end
    t.steps[r[9]] = true
    if r[10] ~= '' then t.err = r[10] end
  elseif kind == 'E' then
    redis.call('RPUSH', t.events, r[4])
    if r[3] == 'log' then
      local id = redis.call('XADD', logs, 'MAXLEN', '~', logs_max, '*', 'd', r[4])
      redis.call('RPUSH', t.logids, id)
    end
    redis.call('XADD', feed, 'MAXLEN', '~', feed_max, '*', 't', r[3], 'd', r[4])
  else
    t.open = t.open + r[3]
    t.failed = t.failed + r[4]
    if r[5] > t.ts then t.ts = r[5] end
  end
end
for _, tid in ipairs(order) do
  local t = touched[tid]
  local trace = t.trace
  if t.open ~= 0 then redis.call('HINCRBY', trace, 'open', t.open) end
  if t.failed ~= 0 then
    -- the index behind ?status=failed: traces with a final failure (a retried dead letter leaves it)
    if redis.call('HINCRBY', trace, 'failed', t.failed) > 0 then
      local start = redis.call('HGET', trace, 'start') or string.format('%d', t.ts)
      redis.call('ZADD', failed_index, 'NX', start, tid)
    else
      redis.call('ZREM', failed_index, tid)
    end
  end
  if t.errors ~= 0 then redis.call('HINCRBY', trace, 'errors', t.errors) end
  if t.err ~= '' then redis.call('HSET', trace, 'error', t.err) end
  local e = tonumber(redis.call('HGET', trace, 'end') or '0')
  if t.ts > e then redis.call('HSET', trace, 'end', string.format('%d', t.ts)) end
  local steps = redis.call('HGET', trace, 'steps') or ''
  local changed = false
  for step, _ in pairs(t.steps) do
    if not string.find(',' .. steps .. ',', ',' .. step .. ',', 1, true) then
      if steps == '' then steps = step else steps = steps .. ',' .. step end
      changed = true
    end
  end
  if changed then redis.call('HSET', trace, 'steps', steps) end
  local flat = redis.call('HGETALL', trace)
  local summary = {}
  for i = 1, #flat, 2 do summary[flat[i]] = flat[i + 1] end
  local body = cjson.encode(summary)
  feed_n, feed_b = feed_n + 1, feed_b + #body
  redis.call('XADD', feed, 'MAXLEN', '~', feed_max, '*', 't', 'trace', 'd', body)
end
-- the running averages the next batch's caps start from
local function averaged(avg, n, b)
  if n == 0 then return avg end
  local w = math.min(1, n / WINDOW)
  if avg <= 0 then w = 1 end
  return avg + (cost(b / n) - avg) * w
end
redis.call('HSET', sizes, 'feed', string.format('%.1f', averaged(feed_avg, feed_n, feed_b)),
           'logs', string.format('%.1f', averaged(logs_avg, logs_n, logs_b)))
return #records
