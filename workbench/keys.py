"""Every Redis key the framework writes, in one place.

All keys share one prefix so that a workbench can live in a Redis database next to other data.
The queue's own keys (in arq's layout) are named in `job_queue.py`, their prefixes in `arq_seam.py`.
"""

PREFIX = "wb:"

# step state: one hash per group, field = key, value = JSON
STATE = PREFIX + "state:"  # + group
STATE_GROUPS = PREFIX + "state-groups"  # set of group names

# traces and logs
TRACES = PREFIX + "traces"  # zset: trace id -> start ms (the time index)
FAILED_TRACES = PREFIX + "traces:failed"  # zset: the same, for traces with a final failure
FAILED_INDEXED = PREFIX + "traces:failed:indexed"  # set once traces stored before that index are in it
TRACE = PREFIX + "trace:"  # + id: hash with the trace summary
SPANS = PREFIX + "spans:"  # + trace id: hash span id -> span JSON
EVENTS = PREFIX + "events:"  # + trace id: list of span events (logs, emits, state ops), in order
LOGS = PREFIX + "logs"  # stream of every log line (capped), newest last
FEED = PREFIX + "feed"  # stream of live records for the UI (capped)
STREAM_SIZES = PREFIX + "stream-sizes"  # hash: feed, logs -> their entries' average size (their size caps)
REPLAYS = PREFIX + "replays:"  # + trace id: zset of the traces replayed / rerun from it -> ms (replay.py)

# reliability
DEAD = PREFIX + "dead"  # zset: dead letter id -> ms
DEAD_LETTER = PREFIX + "dead:"  # + id: JSON record
UNDECLARED = PREFIX + "undeclared:"  # + step: set of topics it emitted without declaring (Motia's rules)
CRON_CLAIM = PREFIX + "cron-claim:"  # + step name + ":" + tick ms: one worker wins each tick

# liveness
WORKERS = PREFIX + "workers"  # zset: worker id -> last heartbeat ms
