"""Runtime settings, read once from the environment (`WORKBENCH_*`), with defaults for `dev`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def _env_level(name: str, default: str) -> int:
    raw = os.environ.get(name, default).upper()
    level = logging.getLevelName(raw)
    if not isinstance(level, int):
        raise SystemExit(f"{name} must be one of DEBUG, INFO, WARNING, ERROR; got {raw!r}")
    return level


MIN_TOKEN_LENGTH = 16
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _env_token(name: str) -> str | None:
    raw = os.environ.get(name) or None
    if raw is not None and len(raw) < MIN_TOKEN_LENGTH:
        raise SystemExit(
            f"{name} must be at least {MIN_TOKEN_LENGTH} characters (a guessable token guards nothing)"
        )
    return raw


def _env_hosts(name: str) -> tuple[str, ...] | None:
    """`WORKBENCH_ALLOWED_HOSTS=app.example.com,.internal` (a leading dot: any subdomain; `*`: any)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return tuple(h.strip() for h in raw.split(",") if h.strip())


def default_steps_dir() -> Path:
    """`steps/` if there is one, else `src/` (where Motia projects keep their steps), else `steps/`."""
    for name in ("steps", "src"):
        if Path(name).is_dir():
            return Path(name)
    return Path("steps")


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    steps_dir: Path = field(default_factory=lambda: Path("steps"))
    app_name: str = "workbench"
    mode: str = "dev"  # dev | start | worker
    # traces and logs
    tracing: bool = True
    log_level: int = logging.INFO  # threshold for records kept in spans
    retention_traces: int = 10_000  # keep at most this many traces ...
    retention_age_s: int = 7 * 24 * 3600  # ... and none older than this
    feed_maxlen: int = 10_000  # live feed stream length (how far a reconnect can resume)
    logs_maxlen: int = 100_000  # log stream length
    feed_max_bytes: int = 32 << 20  # the live feed's size in Redis (its oldest entries go first); 0: none
    logs_max_bytes: int = 128 << 20  # the log stream's size in Redis; 0: none
    payload_cap: int = 4096  # bytes of an emit payload, or of a state value before / after, kept in a trace
    exchange_cap: int = 65536  # bytes of an API request's body (and of its response's) a span keeps; 0: none
    span_log_cap: int = 1000  # log lines a span keeps ...
    span_log_bytes: int = 1 << 20  # ... and bytes of them
    span_page_rows: int = 200  # a span's events the trace page shows at first, and per "show more"
    field_cap: int = 8192  # bytes of one log field kept (longer ones are cut, marked)
    dead_letters_max: int = 10_000  # dead letters kept at most (the oldest go first) ...
    dead_letters_age_s: int = 30 * 24 * 3600  # ... and none older than this
    # queue and worker
    poll_delay_s: float = 0.5  # fallback poll when no wake-up arrives
    concurrency: int = 20
    lease_s: float = 5.0  # a running job's claim; a crashed worker's jobs re-run after this
    grace_s: float = 10.0  # SIGTERM: how long running jobs may finish before they are re-queued
    # HTTP
    max_body_bytes: int = 1_048_576
    read_timeout_s: float = 10.0  # a client sends a whole request within this, or is disconnected
    max_connections: int = 1000  # open at once; beyond, 503
    sse_ping_s: float = 10.0  # keep-alive comment on idle live streams
    workbench_enabled: bool = True
    workbench_token: str | None = None
    # host names the web process answers to (None: any); `dev` defaults to loopback names
    allowed_hosts: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            redis_url=os.environ.get("REDIS_URL", cls.redis_url),
            steps_dir=Path(os.environ["WORKBENCH_STEPS"])
            if os.environ.get("WORKBENCH_STEPS")
            else default_steps_dir(),
            app_name=os.environ.get("WORKBENCH_APP_NAME", Path.cwd().name),
            tracing=os.environ.get("WORKBENCH_TRACING", "1") not in ("0", "false", "no"),
            log_level=_env_level("WORKBENCH_LOG_LEVEL", "INFO"),
            retention_traces=_env_int("WORKBENCH_RETENTION_TRACES", cls.retention_traces),
            retention_age_s=_env_int("WORKBENCH_RETENTION_AGE", cls.retention_age_s),
            feed_maxlen=_env_int("WORKBENCH_FEED_MAXLEN", cls.feed_maxlen),
            logs_maxlen=_env_int("WORKBENCH_LOGS_MAXLEN", cls.logs_maxlen),
            payload_cap=_env_int("WORKBENCH_PAYLOAD_CAP", cls.payload_cap),
            feed_max_bytes=_env_int("WORKBENCH_FEED_MAX_BYTES", cls.feed_max_bytes),
            logs_max_bytes=_env_int("WORKBENCH_LOGS_MAX_BYTES", cls.logs_max_bytes),
            dead_letters_max=_env_int("WORKBENCH_DEAD_LETTERS_MAX", cls.dead_letters_max),
            exchange_cap=_env_int("WORKBENCH_EXCHANGE_CAP", cls.exchange_cap),
            span_log_cap=_env_int("WORKBENCH_SPAN_LOGS", cls.span_log_cap),
            span_log_bytes=_env_int("WORKBENCH_SPAN_LOG_BYTES", cls.span_log_bytes),
            span_page_rows=max(1, _env_int("WORKBENCH_SPAN_PAGE_ROWS", cls.span_page_rows)),
            field_cap=_env_int("WORKBENCH_FIELD_CAP", cls.field_cap),
            dead_letters_age_s=_env_int("WORKBENCH_DEAD_LETTERS_AGE", cls.dead_letters_age_s),
            poll_delay_s=_env_float("WORKBENCH_POLL_DELAY", cls.poll_delay_s),
            concurrency=_env_int("WORKBENCH_CONCURRENCY", cls.concurrency),
            lease_s=_env_float("WORKBENCH_LEASE", cls.lease_s),
            grace_s=_env_float("WORKBENCH_GRACE", cls.grace_s),
            max_body_bytes=_env_int("WORKBENCH_MAX_BODY", cls.max_body_bytes),
            read_timeout_s=_env_float("WORKBENCH_READ_TIMEOUT", cls.read_timeout_s),
            max_connections=_env_int("WORKBENCH_MAX_CONNECTIONS", cls.max_connections),
            sse_ping_s=_env_float("WORKBENCH_SSE_PING", cls.sse_ping_s),
            workbench_enabled=os.environ.get("WORKBENCH_UI", "1") not in ("0", "false", "no"),
            workbench_token=_env_token("WORKBENCH_TOKEN"),
            allowed_hosts=_env_hosts("WORKBENCH_ALLOWED_HOSTS"),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]
