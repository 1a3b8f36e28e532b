"""Time helpers: UTC in the database, Asia/Shanghai for periods and due dates."""
from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MARKET_TZ = ZoneInfo("Asia/Shanghai")
_PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def today_local() -> date:
    """Today's date in Asia/Shanghai."""
    return now_utc().astimezone(MARKET_TZ).date()


def to_local(dt: datetime | None) -> datetime | None:
    """Convert an aware datetime to Asia/Shanghai (naive input is taken as UTC)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(MARKET_TZ)


def format_local(dt: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a datetime in Asia/Shanghai; empty string for None."""
    local = to_local(dt)
    return local.strftime(fmt) if local else ""


def parse_period(text: str) -> date:
    """Parse 'YYYY-MM' into the first day of that month; ValueError otherwise."""
    match = _PERIOD_RE.match((text or "").strip())
    if not match:
        raise ValueError(f"账期格式应为 YYYY-MM：{text!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def period_str(period: date) -> str:
    """Format a period (first day of month) as 'YYYY-MM'."""
    return f"{period.year:04d}-{period.month:02d}"


def period_end(period: date) -> date:
    """The last day of the month that starts at `period`."""
    return date(period.year, period.month, calendar.monthrange(period.year, period.month)[1])


def add_months(day: date, months: int) -> date:
    """Shift a date by whole months, clamping the day to the month's length."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def previous_period(period: date) -> date:
    """The period before the given one."""
    return add_months(period, -1)


def days_between(start: date, end: date) -> int:
    """Inclusive day count from start to end (0 if end < start)."""
    return max((end - start).days + 1, 0)


def local_day_bounds_utc(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where a Shanghai calendar day starts and ends (half-open)."""
    start = datetime(day.year, day.month, day.day, tzinfo=MARKET_TZ)
    end = start + timedelta(days=1)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)
