"""Cron schedules (workbench/cron.py), checked against `cronsim` as an independent oracle.

cronsim semantics, verified in `test_cronsim_oracle_semantics` below: `next(CronSim(expr, start))` is the
first match strictly after `start` (microseconds dropped), and it accepts 6-field expressions with a leading
seconds field, exactly the form `CronSchedule` uses.

Where the two libraries knowingly differ the expression is left out of the oracle table (or marked xfail when
we consider our behaviour wrong), with the reason next to it:

* croniter (our engine) accepts wrap-around ranges (`22-2`, `FRI-MON`), `?`, `W` and the `L5` spelling of
  "last Friday"; cronsim rejects them. cronsim's `5L` is rejected by croniter. All of those are left out,
  except wrap-around ranges, which we check against cronsim with the range written out as a list.
* A day-of-month or day-of-week field that *starts with* `*` (e.g. `*/2`) makes cronsim (like Debian cron)
  AND the two day fields; croniter ORs them whenever a field is not exactly `*`. Left out of the table; our
  own behaviour is pinned in `test_star_step_day_of_month_is_or_ed_with_day_of_week`.
* `N/step` in day-of-week: cronsim reads `1/2` as 1,3,5,7 (7 = Sunday), croniter as 1,3,5. Left out.
* Equal-bound ranges (`5-5`): croniter reads them as the whole field; `CronSchedule.parse` rewrites them to
  the one value, as cron means, and the table checks that against cronsim.
* DST: on the day clocks go back, croniter runs a fixed-time job in both copies of the repeated hour;
  `CronSchedule.next_after` skips the repeat, so it runs once, like cronsim. On the day clocks go forward,
  croniter moves `*`-hour jobs that fall in the gap to the first valid time; cronsim skips them. The
  Europe/Berlin oracle comparison therefore ignores runs between 01:00
  and 03:59 on a DST-change day; the transition days have their own hand-written tests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from workbench.cron import CronError, CronSchedule, describe

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

RUNS = 5


def iter_ours(schedule: CronSchedule, start: datetime) -> Iterator[datetime]:
    moment = start
    while True:
        moment = schedule.next_after(moment)
        yield moment


def ours(schedule: CronSchedule, start: datetime, n: int = RUNS) -> list[datetime]:
    return list(islice(iter_ours(schedule, start), n))


def oracle(expr: str, start: datetime, n: int = RUNS) -> list[datetime]:
    return list(islice(CronSim(expr, start), n))


@pytest.fixture
def local_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Switch this process's local time zone (TZ + tzset) for one test."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


# --- the oracle itself ---------------------------------------------------------------------------------


def test_cronsim_oracle_semantics() -> None:
    # strictly after the start, even when the start is itself a match
    assert next(CronSim("0 2 * * *", datetime(2024, 1, 1, 2, 0))) == datetime(2024, 1, 2, 2, 0)
    assert next(CronSim("0 2 * * *", datetime(2024, 1, 1, 1, 59, 59))) == datetime(2024, 1, 1, 2, 0)
    # microseconds are dropped before stepping
    assert next(CronSim("* * * * *", datetime(2024, 1, 1, 0, 0, 0, 500_000))) == datetime(2024, 1, 1, 0, 1)
    # a 6-field expression has a leading seconds field
    assert next(CronSim("*/15 * * * * *", datetime(2024, 1, 1))) == datetime(2024, 1, 1, 0, 0, 15)
    assert next(CronSim("30 0 12 * * MON", datetime(2024, 1, 1))) == datetime(2024, 1, 1, 12, 0, 30)
    # aware starts give aware results in the same zone
    got = next(CronSim("0 9 * * *", datetime(2024, 1, 1, tzinfo=NEW_YORK)))
    assert got == datetime(2024, 1, 1, 9, tzinfo=NEW_YORK) and got.tzinfo is NEW_YORK


# --- 5-field expressions against cronsim ------------------------------------------------------------------

ORACLE_EXPRESSIONS: list[str | object] = [
    # every / fixed times
    "* * * * *",
    "0 * * * *",
    "1 * * * *",
    "30 * * * *",
    "59 * * * *",
    "0 0 * * *",
    "0 2 * * *",
    "0 12 * * *",
    "30 23 * * *",
    "59 23 * * *",
    "7 13 * * *",
    "45 6 * * *",
    "0 3 * * *",
    "15 14 1 * *",
    "0 0 1 1 *",
    "59 23 31 12 *",
    "0 12 25 12 *",
    "0 0 1 * *",
    "0 0 15 * *",
    "0 0 28 * *",
    # lists
    "0,15,30,45 * * * *",
    "5,10,55 * * * *",
    "0,59 * * * *",
    "0 0,12 * * *",
    "0 6,18 * * *",
    "15 1,2,3,23 * * *",
    "0 0 1,15 * *",
    "0 0 1,10,20 * *",
    "0 0 5,25 * *",
    "0 0 1 1,4,7,10 *",
    "0 0 1 2,3 *",
    "0 0 * * 1,3,5",
    "0 0 * * 2,4",
    "0 0 * * 0,6",
    "10,20 8,20 1,2 * *",
    # ranges
    "0-5 * * * *",
    "10-20 * * * *",
    "55-59 * * * *",
    "0 9-17 * * *",
    "30 0-3 * * *",
    "0 22-23 * * *",
    "0 0 1-7 * *",
    "0 0 10-12 * *",
    "0 0 25-31 * *",
    "0 0 1 6-8 *",
    "0 12 * 11-12 *",
    "0 0 * * 1-5",
    "0 0 * * 0-6",
    "0 0 * * 3-4",
    "0 0 * * 5-7",
    "0 0 * * 6-7",
    "0-10,50-59 * * * *",
    "0 1-2,22-23 * * *",
    # steps
    "*/1 * * * *",
    "*/2 * * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "*/10 * * * *",
    "*/15 * * * *",
    "*/20 * * * *",
    "*/30 * * * *",
    "*/45 * * * *",
    "*/59 * * * *",
    "1-30/7 * * * *",
    "10-50/15 * * * *",
    "0-59/30 * * * *",
    "5/15 * * * *",
    "3-58/11 * * * *",
    "0 */2 * * *",
    "0 */3 * * *",
    "0 */5 * * *",
    "0 */7 * * *",
    "0 */23 * * *",
    "0 1/5 * * *",
    "0 8-18/2 * * *",
    "0 9-17/4 * * *",
    "0 0 */2 * *",
    "0 0 */10 * *",
    "0 0 2/3 * *",
    "0 0 1-31/3 * *",
    "0 0 20-31/5 * *",
    "0 0 1 */2 *",
    "0 0 1 */3 *",
    "0 0 1 1-12/4 *",
    "0 0 1 2/5 *",
    "0 0 * * */2",
    "0 0 * * 1-5/2",
    "0 0 * * 0-6/3",
    "0,30-40/5 * * * *",
    "*/20 8-17 * * 1-5",
    "15,45 */4 1-15 * *",
    "*/10 */6 * * *",
    # month names
    "0 0 1 JAN *",
    "0 0 1 FEB *",
    "0 0 1 MAR *",
    "0 0 1 APR *",
    "0 0 1 MAY *",
    "0 0 1 JUN *",
    "0 0 1 JUL *",
    "0 0 1 AUG *",
    "0 0 1 SEP *",
    "0 0 1 OCT *",
    "0 0 1 NOV *",
    "0 0 1 DEC *",
    "0 12 * JAN-MAR *",
    "0 0 15 jan,jul *",
    "0 0 1 Jun-Aug *",
    "0 0 1 MAR,JUN,SEP,DEC *",
    "30 6 1 FEB-NOV/3 *",
    # weekday names
    "0 9 * * MON",
    "0 9 * * TUE",
    "0 9 * * WED",
    "0 9 * * THU",
    "0 9 * * FRI",
    "0 9 * * SAT",
    "0 9 * * SUN",
    "0 9 * * MON-FRI",
    "0 9 * * SAT,SUN",
    "0 9 * * mon,wed,fri",
    "0 0 * * TUE-THU",
    "0 0 * * Mon-Wed,Sat",
    "0 0 * MAY-AUG MON",
    "0 8 * JAN SUN",
    # Sunday as 0 and as 7
    "0 0 * * 0",
    "0 0 * * 7",
    "0 12 * * 0,7",
    "0 12 * * 7,1",
    "0 0 * * 0-7",
    "0 0 * * 1-7",
    # day-of-month and day-of-week both restricted: either matches
    "0 0 13 * 5",
    "0 0 13 * FRI",
    "0 0 1 * 1",
    "0 0 1,15 * 3",
    "0 0 1-7 * 1",
    "0 0 31 * 0",
    "0 0 31 * 7",
    "0 12 10-15 * SAT,SUN",
    "0 0 29 2 1",
    "0 0 25 12 MON",
    "0 0 31 4,6,9,11,2 1",
    "0 0 1 JAN MON",
    "30 6 1-7 1-6 1-5",
    # leap days and ends of months
    "0 0 29 2 *",
    "30 12 29 2 *",
    "0 0 28,29 2 *",
    "0 0 29 * *",
    "0 0 30 * *",
    "0 0 31 * *",
    "59 23 31 * *",
    "0 0 31 1,3,5 *",
    "0 0 30,31 * *",
    "0 0 29-31 * *",
    "0 0 31 12 *",
    # `L` (last day of month) and `#` (nth weekday): both libraries support these spellings
    "0 0 L * *",
    "59 23 L * *",
    "0 0 L 2 *",
    "0 0 L */3 *",
    "0 0 * * 1#1",
    "0 0 * * 5#3",
    "0 0 * * 0#5",
    "0 0 * * mon#2",
    "0 9 * * FRI#4",
    # equal-bound ranges (see module docstring)
    "5-5 * * * *",
    "0 0 3-3 * *",
    "0 0 * * 6-6",
    "0 0 * * SUN-SUN",
]

UTC_STARTS = [
    datetime(2024, 1, 1, 0, 0, tzinfo=UTC),  # a Monday at midnight: a match for many expressions
    datetime(2024, 2, 28, 23, 59, 30, tzinfo=UTC),  # rolls over into a leap day
    datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),  # rolls over a year
    datetime(2025, 6, 15, 12, 34, 56, 789_000, tzinfo=UTC),  # with microseconds
    datetime(2099, 3, 1, 0, 0, tzinfo=UTC),  # 2100 is not a leap year
]


def _id(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def test_oracle_table_is_large() -> None:
    assert len(ORACLE_EXPRESSIONS) >= 150


NAIVE_STARTS = [datetime(2024, 1, 1), datetime(2025, 6, 15, 12, 34, 56), datetime(2023, 12, 31, 23, 59, 59)]

BERLIN_STARTS = [
    datetime(2024, 1, 15, 9, 30, tzinfo=BERLIN),
    datetime(2024, 7, 20, 18, 45, 10, tzinfo=BERLIN),
    datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN),  # the day before clocks go forward
    datetime(2024, 10, 26, 23, 0, tzinfo=BERLIN),  # the evening before clocks go back
]


def _near_dst_change(moment: datetime) -> bool:
    """On a day the UTC offset changes, between 01:00 and 03:59 local time (Berlin changes at 02:00/03:00)."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    changes = midnight.utcoffset() != (midnight + timedelta(days=1)).utcoffset()
    return changes and 1 <= moment.hour <= 3


@pytest.mark.parametrize("expr", ORACLE_EXPRESSIONS, ids=_id)
def test_matches_cronsim(expr: str, local_tz: Callable[[str], None]) -> None:
    # 1. aware starts, schedule in UTC
    schedule = CronSchedule.parse(expr, "UTC")
    for start in UTC_STARTS:
        got = ours(schedule, start)
        assert got == oracle(expr, start), f"UTC: {expr!r} from {start}"
        assert all(d.tzinfo is UTC for d in got)

    # 2. naive starts: a naive start is local time, and with no time zone the schedule runs in local time
    local_tz("UTC")
    schedule = CronSchedule.parse(expr)
    for start in NAIVE_STARTS:
        got = ours(schedule, start)
        assert [d.replace(tzinfo=None) for d in got] == oracle(expr, start), f"naive: {expr!r} from {start}"
        assert all(d.utcoffset() == timedelta(0) for d in got)

    # 3. a DST zone. Runs around a DST change (01:00-03:59 on the day itself) are left out of the
    # comparison: the libraries differ there by design (see the module docstring and the transition tests
    # below). Everywhere else they must agree, UTC offsets included.
    schedule = CronSchedule.parse(expr, "Europe/Berlin")
    for start in BERLIN_STARTS:
        got = list(islice((d for d in iter_ours(schedule, start) if not _near_dst_change(d)), RUNS))
        want = list(islice((d for d in CronSim(expr, start) if not _near_dst_change(d)), RUNS))
        assert got == want, f"Berlin: {expr!r} from {start}"
        assert [d.utcoffset() for d in got] == [d.utcoffset() for d in want]
        assert all(d.tzinfo is BERLIN for d in got)


@pytest.mark.parametrize(
    ("expr", "as_list"),
    [
        ("0 22-2 * * *", "0 22,23,0,1,2 * * *"),
        ("55-5 * * * *", "55,56,57,58,59,0,1,2,3,4,5 * * * *"),
        ("0 0 * * FRI-MON", "0 0 * * 5,6,0,1"),
        ("0 0 * * 6-2", "0 0 * * 6,0,1,2"),
        ("0 0 1 NOV-FEB *", "0 0 1 11,12,1,2 *"),
        ("0 0 28-3 * *", "0 0 28,29,30,31,1,2,3 * *"),
    ],
)
def test_wrap_around_ranges_match_the_written_out_list(expr: str, as_list: str) -> None:
    # cronsim rejects wrap-around ranges; croniter reads them as wrapping, which we compare to the list
    schedule = CronSchedule.parse(expr, "UTC")
    for start in UTC_STARTS[:4]:
        assert ours(schedule, start) == oracle(as_list, start)


def test_star_step_day_of_month_is_or_ed_with_day_of_week() -> None:
    # `*/2` counts as a restricted day-of-month, so it is OR-ed with Monday (cronsim/Debian cron would AND)
    schedule = CronSchedule.parse("0 0 */2 * 1", "UTC")
    got = ours(schedule, datetime(2024, 1, 1, tzinfo=UTC), 6)
    assert [d.day for d in got] == [3, 5, 7, 8, 9, 11]  # odd days, plus Monday the 8th
    assert got[3].weekday() == 0


# --- strictly after, normalisation, zones -----------------------------------------------------------------


def test_next_after_is_strictly_after_a_matching_moment() -> None:
    schedule = CronSchedule.parse("0 2 * * *", "UTC")
    assert schedule.next_after(datetime(2024, 5, 1, 2, 0, tzinfo=UTC)) == datetime(
        2024, 5, 2, 2, 0, tzinfo=UTC
    )
    assert schedule.next_after(datetime(2024, 5, 1, 1, 59, 59, 999_999, tzinfo=UTC)) == datetime(
        2024, 5, 1, 2, 0, tzinfo=UTC
    )
    assert schedule.next_after(datetime(2024, 5, 1, 2, 0, 0, 1, tzinfo=UTC)) == datetime(
        2024, 5, 2, 2, 0, tzinfo=UTC
    )


def test_parse_normalises_whitespace_and_reports_seconds() -> None:
    schedule = CronSchedule.parse("  0\t2  *   * *  ", "UTC")
    assert schedule.expression == "0 2 * * *"
    assert not schedule.has_seconds
    assert CronSchedule.parse("0 0 2 * * *", "UTC").has_seconds


def test_time_zone_new_york() -> None:
    schedule = CronSchedule.parse("0 9 * * *", "America/New_York")
    assert schedule.zone == NEW_YORK
    # a start given in another zone still yields times in the schedule's zone
    got = ours(schedule, datetime(2024, 3, 8, 20, 0, tzinfo=ZoneInfo("Asia/Tokyo")), 4)  # = 06:00 in New York
    assert all(isinstance(d.tzinfo, ZoneInfo) and d.tzinfo.key == "America/New_York" for d in got)
    assert [(d.day, d.hour, d.minute) for d in got] == [(8, 9, 0), (9, 9, 0), (10, 9, 0), (11, 9, 0)]
    # 09:00 wall-clock time on both sides of the March 10 change: the UTC offset changes, the hour doesn't
    assert [d.utcoffset() for d in got] == [timedelta(hours=-5)] * 2 + [timedelta(hours=-4)] * 2
    assert got[0].astimezone(UTC) == datetime(2024, 3, 8, 14, 0, tzinfo=UTC)
    assert got[3].astimezone(UTC) == datetime(2024, 3, 11, 13, 0, tzinfo=UTC)


def test_without_time_zone_the_schedule_runs_in_local_time(local_tz: Callable[[str], None]) -> None:
    local_tz("Asia/Tokyo")  # no DST, so the local offset is the same all year
    schedule = CronSchedule.parse("0 2 * * *")
    got = schedule.next_after(datetime(2024, 7, 1, 0, 0, tzinfo=UTC))  # 09:00 in Tokyo
    assert got.utcoffset() == timedelta(hours=9)
    assert (got.day, got.hour) == (2, 2)
    assert got.astimezone(UTC) == datetime(2024, 7, 1, 17, 0, tzinfo=UTC)


def test_without_time_zone_local_dst_is_followed(local_tz: Callable[[str], None]) -> None:
    local_tz("Europe/Berlin")
    schedule = CronSchedule.parse("0 2 * * *")
    # whichever half of the year "now" is in, one of these dates has the other UTC offset
    winter = schedule.next_after(datetime(2030, 1, 10, 12, tzinfo=UTC)).astimezone(BERLIN)
    summer = schedule.next_after(datetime(2030, 7, 10, 12, tzinfo=UTC)).astimezone(BERLIN)
    assert (winter.hour, winter.minute) == (2, 0)
    assert (summer.hour, summer.minute) == (2, 0)


# --- DST transition days (Europe/Berlin, 2024-03-31 and 2024-10-27) --------------------------------------


def test_spring_forward_fixed_time_in_the_gap_runs_at_the_first_valid_time() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    start = datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN)
    got = ours(schedule, start, 3)
    # 02:30 does not exist on March 31; the run happens at 03:00 CEST, as cronsim (and Debian cron) do
    assert got[0] == datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN)
    assert got[0].astimezone(UTC) == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
    assert got[1:] == [datetime(2024, 4, 1, 2, 30, tzinfo=BERLIN), datetime(2024, 4, 2, 2, 30, tzinfo=BERLIN)]
    assert got == oracle("30 2 * * *", start, 3)


def test_fall_back_minute_steps_run_through_both_copies_of_the_hour() -> None:
    schedule = CronSchedule.parse("*/15 * * * *", "Europe/Berlin")
    got = ours(schedule, datetime(2024, 10, 27, 1, 50, tzinfo=BERLIN), 10)
    first = datetime(2024, 10, 27, 0, 0, tzinfo=UTC)  # 02:00 CEST
    assert [d.astimezone(UTC) for d in got] == [first + timedelta(minutes=15 * i) for i in range(10)]
    assert [(d.hour, d.minute) for d in got[:8]] == [(2, m) for m in (0, 15, 30, 45)] * 2
    assert [d.utcoffset() for d in got[:8]] == [timedelta(hours=2)] * 4 + [timedelta(hours=1)] * 4


def test_fall_back_fixed_time_outside_the_repeated_hour_runs_once() -> None:
    schedule = CronSchedule.parse("0 3 * * *", "Europe/Berlin")
    got = ours(schedule, datetime(2024, 10, 26, 12, 0, tzinfo=BERLIN), 2)
    assert got == [datetime(2024, 10, 27, 3, 0, tzinfo=BERLIN), datetime(2024, 10, 28, 3, 0, tzinfo=BERLIN)]
    assert got[0].astimezone(UTC) == datetime(2024, 10, 27, 2, 0, tzinfo=UTC)


def test_fall_back_daily_job_in_the_repeated_hour_runs_once() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    got = ours(schedule, datetime(2024, 10, 26, 12, 0, tzinfo=BERLIN), 2)
    assert [d.date() for d in got] == [date(2024, 10, 27), date(2024, 10, 28)]


# --- 6-field expressions (leading seconds) --------------------------------------------------------------

SECONDS_CASES = [
    ("*/15 * * * * *", datetime(2024, 1, 1, 12, 0, 0), datetime(2024, 1, 1, 12, 0, 15)),
    ("*/15 * * * * *", datetime(2024, 1, 1, 12, 0, 14, 900_000), datetime(2024, 1, 1, 12, 0, 15)),
    ("*/15 * * * * *", datetime(2024, 1, 1, 12, 0, 59), datetime(2024, 1, 1, 12, 1, 0)),
    ("* * * * * *", datetime(2024, 1, 1, 12, 0, 0, 500_000), datetime(2024, 1, 1, 12, 0, 1)),
    ("0 * * * * *", datetime(2024, 1, 1, 10, 0, 0), datetime(2024, 1, 1, 10, 1, 0)),
    ("59 * * * * *", datetime(2024, 1, 1, 0, 0, 59), datetime(2024, 1, 1, 0, 1, 59)),
    ("5,10 * * * * *", datetime(2024, 1, 1, 0, 0, 10), datetime(2024, 1, 1, 0, 1, 5)),
    ("30 0 12 * * MON", datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 12, 0, 30)),  # Jan 1 is a Monday
    ("30 0 12 * * MON", datetime(2024, 1, 1, 12, 0, 30), datetime(2024, 1, 8, 12, 0, 30)),
    ("10-20/5 30 * * * *", datetime(2024, 1, 1, 0, 30, 20), datetime(2024, 1, 1, 1, 30, 10)),
    ("0 0 2 * * *", datetime(2024, 1, 1, 2, 0, 0), datetime(2024, 1, 2, 2, 0, 0)),
    ("45 */20 * * * SUN", datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 7, 0, 0, 45)),
    ("59 59 23 31 12 *", datetime(2024, 6, 1), datetime(2024, 12, 31, 23, 59, 59)),
    ("0 0 0 29 2 *", datetime(2024, 3, 1), datetime(2028, 2, 29, 0, 0, 0)),
    ("0 0 0 1 JAN *", datetime(2024, 1, 1, 0, 0, 0), datetime(2025, 1, 1, 0, 0, 0)),
    ("15 30 6 * * 7", datetime(2024, 1, 1), datetime(2024, 1, 7, 6, 30, 15)),
    ("15 30 6 * * 0", datetime(2024, 1, 1), datetime(2024, 1, 7, 6, 30, 15)),
]


@pytest.mark.parametrize(("expr", "start", "expected"), SECONDS_CASES)
def test_seconds_field_hand_computed(expr: str, start: datetime, expected: datetime) -> None:
    schedule = CronSchedule.parse(expr, "UTC")
    assert schedule.has_seconds
    assert schedule.next_after(start.replace(tzinfo=UTC)) == expected.replace(tzinfo=UTC)


def _seconds_set(field: str) -> set[int]:
    """An independent reading of a seconds field: lists of `*`, `a`, `a-b`, each with an optional `/step`."""
    out: set[int] = set()
    for term in field.split(","):
        base, _, step = term.partition("/")
        if base == "*":
            lo, hi = 0, 59
        elif "-" in base:
            lo, hi = (int(p) for p in base.split("-"))
        else:
            lo = int(base)
            hi = 59 if step else lo
        out.update(range(lo, hi + 1, int(step or 1)))
    return out


def brute_force(expr: str, start: datetime, n: int) -> list[datetime]:
    """Minutes matching cronsim's 5-field reading of the minute..day-of-week fields, then second by second
    through each such minute, keeping the seconds in our own reading of the seconds field. Naive datetimes
    (plain wall-clock arithmetic)."""
    seconds_field, *rest = expr.split()
    seconds = _seconds_set(seconds_field)
    out: list[datetime] = []
    first_minute = start.replace(second=0, microsecond=0)
    for minute in CronSim(" ".join(rest), first_minute - timedelta(seconds=1)):
        for s in range(60):
            moment = minute + timedelta(seconds=s)
            if s in seconds and moment > start:
                out.append(moment)
        if len(out) >= n:
            return out[:n]
    raise AssertionError("unreachable: CronSim iterates until it finds a match")


BRUTE_FORCE_EXPRESSIONS = [
    "*/15 * * * * *",
    "7,13,59 */2 * * * *",
    "10-20/5 30 * * * *",
    "0-5 59 23 * * *",
    "*/20 0 12 * * MON",
    "1/7 */3 * * * *",
    "30 0 0 1,15 * *",
    "0 */10 9-10 * * 1-5",
]


@pytest.mark.parametrize("expr", BRUTE_FORCE_EXPRESSIONS)
def test_seconds_field_against_brute_force(expr: str) -> None:
    schedule = CronSchedule.parse(expr, "UTC")
    for start in (datetime(2024, 1, 1), datetime(2024, 2, 29, 23, 59, 58), datetime(2024, 6, 5, 10, 3, 7)):
        want = brute_force(expr, start, 8)
        got = ours(schedule, start.replace(tzinfo=UTC), 8)
        assert [d.replace(tzinfo=None) for d in got] == want, f"{expr!r} from {start}"


SECONDS_ORACLE_EXPRESSIONS = [
    "*/15 * * * * *",
    "* * * * * *",
    "0 * * * * *",
    "30 0 12 * * MON",
    "0 0 2 * * *",
    "5,35 */5 * * * *",
    "0-10/5 0 0 * * *",
    "59 59 23 L * *",
    "0 0 0 29 2 *",
    "45 30 9 * JAN-MAR SAT,SUN",
    "0 0 0 13 * 5",
    "20-40/10 1,2 3 * * *",
]


@pytest.mark.parametrize("expr", SECONDS_ORACLE_EXPRESSIONS)
def test_seconds_field_matches_cronsim(expr: str) -> None:
    # cronsim reads a 6-field expression with a leading seconds field too
    schedule = CronSchedule.parse(expr, "UTC")
    for start in UTC_STARTS:
        assert ours(schedule, start) == oracle(expr, start), f"{expr!r} from {start}"


def test_seconds_schedule_in_new_york() -> None:
    schedule = CronSchedule.parse("0 0 9 * * *", "America/New_York")
    got = schedule.next_after(datetime(2024, 1, 1, tzinfo=UTC))
    assert got == datetime(2024, 1, 1, 9, tzinfo=NEW_YORK)
    assert got.tzinfo is NEW_YORK and got.utcoffset() == timedelta(hours=-5)


# --- invalid expressions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "* * * *",  # 4 fields
        "* * * * * * *",  # 7 fields
        "",
        "61 * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 32 * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * 0 *",
        "* * * * 8",
        "a b c d e",
        "*/0 * * * *",
        "1,,2 * * * *",
        "* * * FOO *",
        "* * * * FUNDAY",
        "60 * * * * *",  # seconds out of range
        "-1 * * * *",
    ],
)
def test_invalid_expression_raises_cron_error_naming_it(expr: str) -> None:
    with pytest.raises(CronError) as info:
        CronSchedule.parse(expr, "UTC")
    assert repr(expr) in str(info.value)


def test_field_count_message() -> None:
    with pytest.raises(CronError, match=r"'\* \* \* \*' has 4 fields; expected 5, or 6 with leading seconds"):
        CronSchedule.parse("* * * *", "UTC")
    with pytest.raises(CronError, match="has 7 fields"):
        CronSchedule.parse("0 0 0 * * * 2024", "UTC")


@pytest.mark.parametrize("zone", ["Mars/Base", "Europe/berlin", "UTC ", "../etc/passwd"])
def test_unknown_time_zone(zone: str) -> None:
    with pytest.raises(CronError) as info:
        CronSchedule.parse("0 2 * * *", zone)
    assert str(info.value) == f"unknown time zone {zone!r}"


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)
    with pytest.raises(ValueError, match="fields"):
        CronSchedule.parse("nope", "UTC")


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6 *"])
def test_impossible_day_is_rejected_at_parse(expr: str) -> None:
    with pytest.raises(CronError, match=re.escape(repr(expr))):
        CronSchedule.parse(expr, "UTC")


# --- describe() ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("0 2 * * *", "at 02:00 every day"),
        ("*/5 * * * *", "every 5 minutes every day"),
        ("* * * * *", "every minute every day"),
        ("15 * * * *", "at minute 15 of every hour every day"),
        ("0 */6 * * *", "at minute 0 every 6 hours every day"),
        ("0 9 * * 1-5", "at 09:00 on Monday to Friday"),
        ("0 12 * * 0,6", "at 12:00 on Sunday and Saturday"),
        ("0 12 * * 7", "at 12:00 on Sunday"),
        ("30 8 1 * *", "at 08:30 on day 1 of the month"),
        ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
        ("0 0 13 * 5", "at 00:00 on day 13 of the month or Friday"),
        ("0 0 * 6 *", "at 00:00 in June"),
        ("1-30/7 * * * *", "minute 1-30/7, hour * every day"),
        ("*/15 * * * * *", "every 15 seconds"),
        ("* * * * * *", "every second"),
        ("30 0 12 * * MON", "at second 30 at 12:00 on MON"),
        ("0 0 2 * * *", "at 02:00 every day"),
        ("5 */10 * * * *", "at second 5 every 10 minutes every day"),
    ],
)
def test_describe(expr: str, text: str) -> None:
    assert describe(expr) == text
    assert CronSchedule.parse(expr, "UTC").describe() == text


def test_describe_every_second_within_a_restricted_minute() -> None:
    assert describe("* 0 12 * * *") != "every second"  # runs only during 12:00:00-12:00:59
