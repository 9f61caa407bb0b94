-- Write a batch of trace records in one call: the traces' hashes, spans, events and logs, and the
-- live feed, so what the browser sees live and what a reload shows can never disagree.
--
-- KEYS[1]: the live feed (stream)   KEYS[2]: the log stream   KEYS[3]: the trace index (zset)
-- KEYS[4]: the failed-trace index (zset); then four keys per trace of the batch, in the order the
--   traces first appear in the records, from KEYS[4t + 1]: its hash, its spans (hash), its events
--   (list), the ids of its lines in the log stream (list)
-- ARGV[1]: feed length cap   ARGV[2]: log stream length cap   ARGV[3]: the records (msgpack array)
--
-- Each record is an array whose first item names its kind:
--   T trace opened:   trace, start, entry, kind, label, open
--   S span put:       trace, span id, span json, open delta, failed delta, errors delta, ts, step, error
--   E event added:    trace, event kind, event json
--   A trace adjusted: trace, open delta, failed delta, ts
-- Spans and events go to the feed as they are; each trace touched gets its counters updated and ONE
-- summary pushed to the feed at the end of the batch, however many records touched it.
-- Returns the number of records written.
local feed, logs, traces_index, failed_index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local feed_max, logs_max = ARGV[1], ARGV[2]
local records = cmsgpack.unpack(ARGV[3])
-- each trace's keys, in the order the traces first appear (checked before anything is written)
local touched, order = {}, {}
for _, r in ipairs(records) do
  local tid = r[2]
  if not touched[tid] then
    local k = 4 + 4 * #order
    touched[tid] = {open = 0, failed = 0, errors = 0, ts = 0, steps = {}, err = '',
                    trace = KEYS[k + 1], spans = KEYS[k + 2], events = KEYS[k + 3], logids = KEYS[k + 4]}
    table.insert(order, tid)
  end
end
if #KEYS ~= 4 + 4 * #order then
  return redis.error_reply('apply_records: KEYS must hold four keys per trace of the batch')
end
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
  redis.call('XADD', feed, 'MAXLEN', '~', feed_max, '*', 't', 'trace', 'd', cjson.encode(summary))
end
return #records
