"""Cron schedules: parsing, next-run times and a plain-words description.

croniter does the matching (lists, ranges, steps, names, Sunday as 0 or 7, and the rule that a
restricted day-of-month and day-of-week match when either matches). We add the 6-field form with a
leading seconds field, time zones, and validation with a clear reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter


class CronError(ValueError):
    """A cron expression or time zone that cannot be used."""


def local_zone() -> tzinfo:
    """The server's time zone with its DST rules (not just today's offset): $TZ, else /etc/localtime."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    try:
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
        with localtime.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ZoneInfoNotFoundError, ValueError):
        zone = datetime.now().astimezone().tzinfo
        assert zone is not None
        return zone


_SAME_RANGE = re.compile(r"(?<![\w-])(\w+)-\1(?![\w-])")


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    zone: tzinfo

    @classmethod
    def parse(cls, expression: str, timezone: str | None = None) -> CronSchedule:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise CronError(f"{expression!r} has {len(fields)} fields; expected 5, or 6 with leading seconds")
        try:
            zone: tzinfo = ZoneInfo(timezone) if timezone else local_zone()
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CronError(f"unknown time zone {timezone!r}") from exc
        # croniter reads a one-value range such as `5-5` as "every value"; cron means just 5
        fields = [_SAME_RANGE.sub(r"\1", f) for f in fields]
        schedule = cls(" ".join(fields), zone)
        try:
            schedule._iter(datetime.now(zone)).get_next(datetime)
        except (CroniterError, ValueError, KeyError) as exc:
            raise CronError(f"{expression!r}: {exc or 'never matches a real date'}") from exc
        return schedule

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def _iter(self, start: datetime) -> croniter:
        return croniter(self.expression, start, second_at_beginning=self.has_seconds)

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after `moment`, in the schedule's zone."""
        start = moment.astimezone(self.zone)
        runs = self._iter(start)
        result: datetime = runs.get_next(datetime)
        # when clocks go back, a wall-clock time happens twice; cron runs it once
        if result.replace(tzinfo=None) == start.replace(tzinfo=None) and result.fold != start.fold:
            result = runs.get_next(datetime)
        return result

    def describe(self) -> str:
        return describe(self.expression)


_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["", "January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]  # fmt: skip


def _list(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def describe(expression: str) -> str:
    """A short English reading of common expressions; falls back to the expression itself."""
    fields = expression.split()
    seconds = fields.pop(0) if len(fields) == 6 else None
    minute, hour, dom, month, dow = fields
    parts: list[str] = []
    if seconds is not None and seconds != "0":
        if seconds == "*" and fields == ["*"] * 5:
            return "every second"
        if seconds.startswith("*/") and fields[:5] == ["*"] * 5:
            return f"every {seconds[2:]} seconds"
        parts.append(f"at second {seconds}")
    if minute.isdigit() and hour.isdigit():
        parts.append(f"at {int(hour):02d}:{int(minute):02d}")
    elif minute == "*" and hour == "*":
        parts.append("every minute")
    elif minute.startswith("*/") and hour == "*":
        parts.append(f"every {minute[2:]} minutes")
    elif minute.isdigit() and hour == "*":
        parts.append(f"at minute {int(minute)} of every hour")
    elif minute.isdigit() and hour.startswith("*/"):
        parts.append(f"at minute {int(minute)} every {hour[2:]} hours")
    else:
        parts.append(f"minute {minute}, hour {hour}")
    if dom == "*" and dow == "*":
        parts.append("every day" if month == "*" else "")
    if dom != "*":
        parts.append(f"on day {dom} of the month")
    if dow != "*":
        names = []
        for item in dow.split(","):
            if item.isdigit() and int(item) <= 7:
                names.append(_DAYS[int(item)])
            elif "-" in item and all(p.isdigit() for p in item.split("-")):
                a, b = (int(p) for p in item.split("-"))
                names.append(f"{_DAYS[a]} to {_DAYS[min(b, 7)]}")
            else:
                names.append(item)
        parts.append(("or " if dom != "*" else "on ") + _list(names))
    if month != "*":
        if month.isdigit() and 1 <= int(month) <= 12:
            parts.append(f"in {_MONTHS[int(month)]}")
        else:
            parts.append(f"in month {month}")
    return " ".join(p for p in parts if p)
