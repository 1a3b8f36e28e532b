"""Meter readings (抄表读数): check and store readings uploaded as CSV/XLSX or typed in by hand.

One pipeline serves the file import, the CLI and the hand-entry form. Files are streamed and
checked in chunks: per chunk one query fetches the meters, and per billing period in the chunk
one query fetches each meter's reading for that period, the one before it (with up to six
earlier consumptions for the spike check) and the one after it. Good rows are written with one
chunked INSERT ... ON CONFLICT (meter_id, period) DO UPDATE; bad rows are stored on the batch
with their line number and reason, so the clerk can download them, fix them and upload again.
"""
from __future__ import annotations

import functools
import io
import itertools
import os
import re
import statistics
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import AuditLog, Market, Meter, MeterReplacement
from app.models.enums import AuditAction
from app.models.readings import ImportBatch, ImportKind, ImportRowError, ImportStatus, MeterReading
from app.services import audit
from app.services.exceptions import DomainError, NotFound, ValidationFailed
from app.utils.dates import now_utc, period_end, period_str, today_local
from app.utils.tabular import TableError, read_table, write_error_file, write_template

#: Canonical column -> accepted headers (Chinese first: it names the column in messages).
READING_COLUMNS = {
    "meter_number": ["表号", "Meter number", "Meter no", "Meter", "电表号", "水表号", "表编号"],
    "period": ["账期", "Period", "Billing period", "Month", "抄表月份", "月份"],
    "reading": ["读数", "Reading", "本期读数", "Current reading", "表码", "本期表码"],
    "read_date": ["抄表日期", "Reading date", "Read date", "Date", "日期"],
    "reader": ["抄表人", "Reader", "Read by"],
    "note": ["备注", "Note", "Notes", "Remark", "Remarks"],
}
REQUIRED_COLUMNS = {"meter_number", "period", "reading"}
TEMPLATE_HEADERS = ["表号", "账期", "读数", "抄表日期", "抄表人", "备注"]
TEMPLATE_HEADERS_EN = ["Meter number", "Period", "Reading", "Reading date", "Reader", "Note"]

#: Rows checked and stored per round trip.
CHUNK_SIZE = 5000
#: A drop below the previous reading counts as roll-over when the wrapped consumption is at most
#: this share of the register's range (maximum + 1): 99,950 -> 30 on a 99,999 meter is 80 <= 10,000.
ROLLOVER_MAX_SHARE = Decimal("0.1")
#: Consumption above this many times the median of the meter's last periods is flagged.
SPIKE_FACTOR = Decimal(3)
#: How many earlier periods the spike check looks at.
SPIKE_HISTORY = 6
READER_MAX = 50
NOTE_MAX = 200
QUANT = Decimal("0.0001")
#: Rejected rows kept in memory (for the CLI and the page); all of them are stored on the batch.
ERRORS_IN_MEMORY = 200


class ReadingFileUnreadable(ValidationFailed):
    """The uploaded file cannot be read at all (format, encoding, missing columns)."""

    code = "reading_file_unreadable"


class RowRejected(Exception):
    """A row fails a check; the message is the reason shown to the clerk."""


@dataclass
class RowError:
    line_no: int
    cells: list
    reason: str
    sheet: str = "readings"


@dataclass
class ImportResult:
    """What an import did: counts, and the first rejected rows."""

    processed: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    flagged: int = 0
    rollover: int = 0
    replaced: int = 0
    #: Readings of a later period whose previous reading / consumption were recomputed.
    recomputed: int = 0
    errors: list = field(default_factory=list)
    started_dt: object = field(default_factory=now_utc)
    #: Per stored row (hand entry only): meter number -> outcome dict.
    outcomes: list = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def add_error(self, error: RowError) -> None:
        self.rejected += 1
        if len(self.errors) < ERRORS_IN_MEMORY:
            self.errors.append(error)

    def counts(self) -> dict:
        return {
            "processed": self.processed, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "rejected": self.rejected, "flagged": self.flagged,
            "rollover": self.rollover, "replaced": self.replaced, "recomputed": self.recomputed,
        }


@dataclass
class _Row:
    line_no: int
    cells: list
    number: str
    period: date
    reading: Decimal
    read_date: date | None
    reader: str | None
    note: str | None
    meter: object = None


_CONTEXT_COLUMNS = (
    "id", "meter_id", "period", "reading", "previous_reading", "consumption", "read_date", "reader",
    "note", "bill_id", "is_rollover", "has_replacement", "is_flagged", "flag_reason",
)


class _StoredRow(dict):
    """A stored reading read with the driver's cursor; columns as attributes."""

    __getattr__ = dict.__getitem__


@dataclass
class _Around:
    """What is stored around a (meter, period): same-period row, previous reading, history, next row."""

    same: object = None
    previous_period: date | None = None
    previous_reading: Decimal | None = None
    #: Median and count of the consumptions of up to SPIKE_HISTORY earlier periods.
    median: Decimal | None = None
    history_count: int = 0
    #: Those consumptions, newest first (a list, or "1,2,3" text parsed only when needed).
    history: object = ()
    following: object = None

    @property
    def past(self) -> list:
        if isinstance(self.history, str):
            self.history = [Decimal(v) for v in self.history.split(",") if v]
        return list(self.history)


# The latest earlier reading and the consumptions of up to `history` earlier periods: their exact
# median (no float), count, and the list newest first as text. Plain psycopg: it runs per chunk.
_PG_HISTORY = """
SELECT m.id, h.prev_period, h.prev_reading, h.n,
       (h.sorted[(h.n + 1) / 2] + h.sorted[(h.n + 2) / 2]) / 2 AS median, h.history
FROM unnest(CAST(%(ids)s AS integer[])) AS m(id)
JOIN LATERAL (
    SELECT max(x.period) AS prev_period, (array_agg(x.reading ORDER BY x.period DESC))[1] AS prev_reading,
           count(*)::int AS n, array_agg(x.consumption ORDER BY x.consumption) AS sorted,
           array_to_string(array_agg(x.consumption ORDER BY x.period DESC), ',') AS history
    FROM (SELECT r.period, r.reading, r.consumption FROM meter_readings r
          WHERE r.meter_id = m.id AND r.period < %(period)s ORDER BY r.period DESC LIMIT %(history)s) x
) h ON h.prev_period IS NOT NULL
"""

# The reading at `period` (if stored) and the next later one: index lookups per meter (LATERAL ...
# LIMIT keeps them so even when the table statistics predate this import).
_PG_AROUND = """
SELECT r.*
FROM unnest(CAST(%%(ids)s AS integer[])) AS m(id)
JOIN LATERAL (
    SELECT %s FROM meter_readings x WHERE x.meter_id = m.id AND x.period >= %%(period)s ORDER BY x.period LIMIT 2
) r ON true
""" % ", ".join(_CONTEXT_COLUMNS)

# One index lookup per number (a plain "= ANY" over thousands of numbers plans as a sequential scan).
_PG_METERS = sa.text("""
SELECT m.id, m.number, m.zone_id, m.multiplier, m.max_reading, m.start_reading, m.install_date, m.is_active
FROM unnest(CAST(CAST(:numbers AS text) AS varchar[])) AS n(number)
JOIN LATERAL (
    SELECT * FROM meters x WHERE x.market_id = :market AND x.number = n.number LIMIT 1
) m ON true
WHERE CAST(:all_zones AS boolean) OR m.zone_id = ANY(CAST(CAST(:zones AS text) AS integer[]))
""")


# --- parsing of cell text --------------------------------------------------------------------

_PERIOD_PATTERNS = [
    re.compile(r"^(\d{4})\s*[-/.]\s*(\d{1,2})$"),
    re.compile(r"^(\d{4})(\d{2})$"),
    re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月?$"),
    # Excel turns a typed "2026-03" into the date 2026-03-01: accept the first of a month.
    re.compile(r"^(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*0?1(?:\s+0?0:00(?::00)?)?$"),
]
_DATE_PATTERNS = [
    re.compile(r"^(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?$"),
]
_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")


def fold_text(text) -> str:
    """Cell text with full-width characters folded (NFKC) and surrounding spaces removed."""
    text = str(text or "")
    if text.isascii():
        return text.strip()
    return unicodedata.normalize("NFKC", text).strip()


@functools.lru_cache(maxsize=4096)
def parse_period_text(text: str) -> date:
    """A billing period typed as 2026-03, 2026/3, 202603, 2026年3月 (or Excel's 2026-03-01)."""
    folded = fold_text(text)
    for pattern in _PERIOD_PATTERNS:
        match = pattern.match(folded)
        if match:
            year, month = int(match.group(1)), int(match.group(2))
            if 1 <= month <= 12 and 2000 <= year <= 2999:
                return date(year, month, 1)
            break
    raise RowRejected(f"账期格式错误：“{text}”（应为 YYYY-MM，如 2026-03）")


@functools.lru_cache(maxsize=4096)
def parse_date_text(text: str) -> date:
    """A day typed as 2026-03-31, 2026/3/31, 20260331 or 2026年3月31日."""
    folded = fold_text(text)
    for pattern in _DATE_PATTERNS:
        match = pattern.match(folded)
        if match:
            try:
                return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            except ValueError:
                break
    raise RowRejected(f"抄表日期格式错误：“{text}”（应为 YYYY-MM-DD，如 2026-03-31）")


def parse_reading_text(text: str) -> Decimal:
    """A meter reading: a non-negative decimal with at most 4 decimals (thousands commas allowed)."""
    folded = fold_text(text).replace(",", "").replace(" ", "")
    if folded.startswith(("-", "−")) and _NUMBER_RE.match(folded[1:]):
        raise RowRejected(f"读数不能为负数：{text}")
    if not _NUMBER_RE.match(folded):
        raise RowRejected(f"读数不是有效数字：“{text}”")
    try:
        value = Decimal(folded)
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees a number
        raise RowRejected(f"读数不是有效数字：“{text}”") from None
    if value.as_tuple().exponent < -4:
        raise RowRejected(f"读数最多保留 4 位小数：{text}")
    if value >= Decimal("1e12"):
        raise RowRejected(f"读数过大：{text}")
    return value


def format_quantity(value: Decimal | None) -> str:
    """A quantity for messages: 99950.0000 -> 99950, 12.5000 -> 12.5."""
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


def _parse_row(line_no, values, cells, today) -> _Row:
    """Check one row's cells on their own (no database); raise RowRejected with the reason."""
    number = fold_text(values.get("meter_number"))
    if not number:
        raise RowRejected("缺少表号")
    if len(number) > 40:
        raise RowRejected(f"表号过长：{number[:40]}…")
    period_text = values.get("period") or ""
    if not fold_text(period_text):
        raise RowRejected("缺少账期")
    period = parse_period_text(period_text)
    if period > today.replace(day=1):
        raise RowRejected(f"账期 {period_str(period)} 晚于本月，不能提前录入")
    reading_text = values.get("reading") or ""
    if not fold_text(reading_text):
        raise RowRejected("缺少读数")
    reading = parse_reading_text(reading_text)
    read_date = None
    date_text = values.get("read_date") or ""
    if fold_text(date_text):
        read_date = parse_date_text(date_text)
        if read_date > today:
            raise RowRejected(f"抄表日期 {read_date.isoformat()} 晚于今天")
    # Free text keeps its characters (full-width punctuation is intended); only spaces are trimmed.
    reader = str(values.get("reader") or "").strip() or None
    if reader and len(reader) > READER_MAX:
        raise RowRejected(f"抄表人过长（最多 {READER_MAX} 字）")
    note = str(values.get("note") or "").strip() or None
    if note and len(note) > NOTE_MAX:
        raise RowRejected(f"备注过长（最多 {NOTE_MAX} 字）")
    return _Row(line_no, cells, number, period, reading, read_date, reader, note)


# --- consumption ------------------------------------------------------------------------------


def compute_consumption(previous: Decimal, reading: Decimal, max_reading: Decimal, replacements=()):
    """Reading difference since `previous`: across replacements, or a plausible roll-over.

    Returns (difference before the multiplier, is_rollover, has_replacement); raises RowRejected
    when the reading cannot follow the previous one.
    """
    if replacements:
        total = Decimal(0)
        start = previous
        for rep in replacements:
            if rep.old_final_reading < start:
                raise RowRejected(
                    f"换表记录（{rep.replaced_date.isoformat()}）的旧表止码 {format_quantity(rep.old_final_reading)}"
                    f" 低于上期读数 {format_quantity(start)}"
                )
            total += rep.old_final_reading - start
            start = rep.new_start_reading
        if reading < start:
            raise RowRejected(f"读数 {format_quantity(reading)} 低于新表起始读数 {format_quantity(start)}（{replacements[-1].replaced_date.isoformat()} 换表）")
        return total + (reading - start), False, True
    if reading >= previous:
        return reading - previous, False, False
    wrapped = (max_reading - previous + 1) + reading
    if wrapped <= (max_reading + 1) * ROLLOVER_MAX_SHARE:
        return wrapped, True, False
    return None


@functools.lru_cache(maxsize=512)
def _month_end(period: date) -> date:
    return period_end(period)


def _median(values) -> Decimal | None:
    values = [Decimal(v) for v in values if v is not None]
    if not values:
        return None
    return Decimal(statistics.median(values))


# --- the pipeline -----------------------------------------------------------------------------


def _insert_for_dialect():
    name = db.session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise DomainError(f"不支持的数据库：{name}")  # pragma: no cover


_TEXT_COLUMNS = {"reader", "note", "flag_reason"}
_UPSERT_COLUMNS = (
    "zone_id", "reading", "read_date", "reader", "note", "previous_reading", "consumption",
    "is_rollover", "has_replacement", "is_flagged", "flag_reason", "batch_id", "updated_dt",
)
_AUDIT_FIELDS = (
    "reading", "read_date", "reader", "note", "previous_reading", "consumption", "is_rollover",
    "has_replacement", "is_flagged", "flag_reason",
)


class ReadingImporter:
    """Checks and stores readings chunk by chunk for one market (and, for a Manager, some zones)."""

    def __init__(self, market_id, zone_ids=None, batch_id=None, audit_each_row=False, today=None):
        self.market_id = market_id
        self.zone_ids = None if zone_ids is None else sorted(set(zone_ids))
        self.batch_id = batch_id
        self.audit_each_row = audit_each_row
        self.today = today or today_local()
        self.result = ImportResult()
        self.seen = {}
        self.now = now_utc()
        self.insert = _insert_for_dialect()
        self.is_postgresql = db.session.get_bind().dialect.name == "postgresql"
        self.table = MeterReading.__table__
        self.actor = audit.current_actor()

    # chunk entry point
    def process(self, rows) -> None:
        """Check and store one chunk of (line_no, values, cells)."""
        errors: list[RowError] = []
        parsed: list[_Row] = []
        for line_no, values, cells in rows:
            self.result.processed += 1
            try:
                row = _parse_row(line_no, values, cells, self.today)
            except RowRejected as exc:
                errors.append(RowError(line_no, cells, str(exc)))
                continue
            key = (row.number, row.period)
            first = self.seen.get(key)
            if first is not None:
                errors.append(RowError(line_no, cells, f"与第 {first} 行重复（同一表号、同一账期）"))
                continue
            self.seen[key] = line_no
            parsed.append(row)
        if parsed:
            meters = self._meters({row.number for row in parsed})
            known = []
            for row in parsed:
                meter = meters.get(row.number)
                if meter is None:
                    if self.zone_ids is None:
                        reason = f"表号 {row.number} 不存在"
                    else:
                        reason = f"表号 {row.number} 不存在或不属于您负责的片区"
                    errors.append(RowError(row.line_no, row.cells, reason))
                elif not meter.is_active:
                    errors.append(RowError(row.line_no, row.cells, f"表 {row.number} 已停用"))
                elif _month_end(row.period) < meter.install_date:
                    errors.append(RowError(
                        row.line_no, row.cells,
                        f"账期 {period_str(row.period)} 早于该表的安装日期 {meter.install_date.isoformat()}",
                    ))
                elif row.reading > meter.max_reading:
                    errors.append(RowError(
                        row.line_no, row.cells,
                        f"读数 {format_quantity(row.reading)} 超过该表的最大读数 {format_quantity(meter.max_reading)}",
                    ))
                else:
                    row.meter = meter
                    known.append(row)
            if known:
                replacements = self._replacements({row.meter.id for row in known})
                by_period = defaultdict(list)
                for row in known:
                    by_period[row.period].append(row)
                for period in sorted(by_period):
                    errors.extend(self._store_period(period, by_period[period], replacements))
        for error in sorted(errors, key=lambda e: e.line_no):
            self.result.add_error(error)
        if errors and self.batch_id is not None:
            db.session.execute(
                sa.insert(ImportRowError),
                [{"batch_id": self.batch_id, "sheet": e.sheet, "line_no": e.line_no,
                  "cells": list(e.cells), "reason": e.reason[:500]} for e in errors],
            )

    def _in(self, column, values):
        """column IN values: one array parameter on PostgreSQL (= ANY), a plain IN list on SQLite."""
        if self.is_postgresql:
            return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
        return column.in_(list(values))

    def _upsert(self, rows) -> None:
        """INSERT ... ON CONFLICT (meter_id, period) DO UPDATE the rows, unless the stored one is billed."""
        table = self.table
        stmt = self.insert(table)
        if self.is_postgresql:
            # One statement per chunk: each column travels as one array literal, zipped by unnest().
            names = [name for name in rows[0] if name not in ("created_dt", "updated_dt")]
            source = sa.select(
                *[sa.func.unnest(sa.cast(sa.bindparam(f"a_{name}", _pg_array([row[name] for row in rows],
                                                                                 name in _TEXT_COLUMNS),
                                                      type_=sa.Text),
                                         postgresql.ARRAY(table.c[name].type))).label(name)
                  for name in names],
                sa.bindparam("a_now", self.now, type_=table.c.created_dt.type).label("created_dt"),
                sa.bindparam("a_now2", self.now, type_=table.c.updated_dt.type).label("updated_dt"),
            )
            stmt = stmt.from_select([*names, "created_dt", "updated_dt"], source)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.meter_id, table.c.period],
            set_={name: stmt.excluded[name] for name in _UPSERT_COLUMNS},
            where=table.c.bill_id.is_(None),
        )
        if self.is_postgresql:
            db.session.execute(stmt)
        else:
            db.session.execute(stmt, rows)

    def _meters(self, numbers) -> dict:
        """Meter facts for the chunk's numbers, in one query (restricted to the user's zones)."""
        if self.is_postgresql:
            rows = db.session.execute(_PG_METERS, {
                "numbers": _pg_array(sorted(numbers)), "market": self.market_id,
                "all_zones": self.zone_ids is None, "zones": _pg_array(self.zone_ids or []),
            }).all()
            return {row.number: row for row in rows}
        query = sa.select(
            Meter.id, Meter.number, Meter.zone_id, Meter.multiplier, Meter.max_reading,
            Meter.start_reading, Meter.install_date, Meter.is_active,
        ).where(Meter.market_id == self.market_id, Meter.number.in_(sorted(numbers)))
        if self.zone_ids is not None:
            query = query.where(Meter.zone_id.in_(self.zone_ids or [-1]))
        return {row.number: row for row in db.session.execute(query).all()}

    def _replacements(self, meter_ids) -> dict:
        """Every recorded replacement of the chunk's meters, by meter, oldest first."""
        rows = db.session.execute(
            sa.select(
                MeterReplacement.meter_id, MeterReplacement.replaced_date,
                MeterReplacement.old_final_reading, MeterReplacement.new_start_reading,
            ).where(self._in(MeterReplacement.meter_id, sorted(meter_ids)))
            .order_by(MeterReplacement.meter_id, MeterReplacement.replaced_date)
        )
        found = defaultdict(list)
        for row in rows.all():
            found[row.meter_id].append(row)
        return found

    def _context(self, period, meter_ids) -> dict:
        """For each meter, in one query: its reading at `period`, the latest earlier reading with the
        consumptions of up to six earlier periods (newest first), and the next later reading."""
        if self.is_postgresql:
            return self._context_postgresql(period, meter_ids)
        r = self.table
        cols = [r.c[name] for name in _CONTEXT_COLUMNS]
        ids = sorted(meter_ids)
        before = sa.select(
            *cols, sa.func.row_number().over(partition_by=r.c.meter_id, order_by=r.c.period.desc()).label("rn")
        ).where(self._in(r.c.meter_id, ids), r.c.period < period).subquery("before")
        after = sa.select(
            *cols, sa.func.row_number().over(partition_by=r.c.meter_id, order_by=r.c.period.asc()).label("rn")
        ).where(self._in(r.c.meter_id, ids), r.c.period > period).subquery("after")
        query = sa.union_all(
            sa.select(*[before.c[n] for n in _CONTEXT_COLUMNS], sa.literal("p").label("kind"), before.c.rn)
            .where(before.c.rn <= SPIKE_HISTORY),
            sa.select(*cols, sa.literal("s").label("kind"), sa.literal(0).label("rn"))
            .where(self._in(r.c.meter_id, ids), r.c.period == period),
            sa.select(*[after.c[n] for n in _CONTEXT_COLUMNS], sa.literal("n").label("kind"), after.c.rn)
            .where(after.c.rn == 1),
        )
        around = defaultdict(_Around)
        earlier = defaultdict(list)
        for row in db.session.execute(query).all():
            if row.kind == "s":
                around[row.meter_id].same = row
            elif row.kind == "n":
                around[row.meter_id].following = row
            else:
                earlier[row.meter_id].append(row)
        for meter_id, rows in earlier.items():
            rows.sort(key=lambda x: x.period, reverse=True)
            item = around[meter_id]
            item.previous_period, item.previous_reading = rows[0].period, rows[0].reading
            item.history = [Decimal(x.consumption) for x in rows]
            item.median, item.history_count = _median(item.history), len(rows)
        return around

    def _context_postgresql(self, period, meter_ids) -> dict:
        """The same facts on PostgreSQL, from index lookups per meter (two queries per chunk)."""
        around = defaultdict(_Around)
        params = {"ids": _pg_array(sorted(meter_ids)), "period": period, "history": SPIKE_HISTORY}
        # Straight on the driver's cursor, inside the session's transaction: thousands of rows per
        # chunk, read as plain tuples.
        cursor = db.session.connection().connection.driver_connection.cursor()
        try:
            cursor.execute(_PG_HISTORY, params)
            for meter_id, prev_period, prev_reading, count, median, history in cursor.fetchall():
                item = around[meter_id]
                item.previous_period, item.previous_reading = prev_period, prev_reading
                item.history_count, item.median, item.history = count, median, history
            cursor.execute(_PG_AROUND, params)
            names = [c.name for c in cursor.description]
            for values in cursor.fetchall():
                row = _StoredRow(zip(names, values))
                item = around[row.meter_id]
                if row.period == period:
                    item.same = row
                elif item.following is None or row.period < item.following.period:
                    item.following = row
        finally:
            cursor.close()
        return around

    def _store_period(self, period, rows, replacements) -> list[RowError]:
        """Check the rows of one period against the stored readings and write the good ones."""
        errors = []
        around = self._context(period, [row.meter.id for row in rows])
        upserts, audits, follow_ups = [], [], []
        for row in rows:
            meter = row.meter
            try:
                outcome = self._check(row, meter, around.get(meter.id) or _Around(), replacements.get(meter.id, ()))
            except RowRejected as exc:
                errors.append(RowError(row.line_no, row.cells, str(exc)))
                continue
            if outcome is None:
                self.result.unchanged += 1
                continue
            values, before, follow_up = outcome
            upserts.append(values)
            if before is None:
                self.result.inserted += 1
            else:
                self.result.updated += 1
                audits.append((before, values, row))
            if follow_up is not None:
                follow_ups.append(follow_up)
            self.result.flagged += int(values["is_flagged"])
            self.result.rollover += int(values["is_rollover"])
            self.result.replaced += int(values["has_replacement"])
            if self.audit_each_row:
                self.result.outcomes.append({"number": row.number, "created": before is None, **values})
        if upserts:
            self._upsert(upserts)
        if follow_ups:
            db.session.execute(
                sa.update(self.table).where(self.table.c.id == sa.bindparam("b_id")).values(
                    previous_reading=sa.bindparam("b_previous"), consumption=sa.bindparam("b_consumption"),
                    is_rollover=sa.bindparam("b_rollover"), has_replacement=sa.bindparam("b_replacement"),
                    is_flagged=sa.bindparam("b_flagged"), flag_reason=sa.bindparam("b_flag_reason"),
                    updated_dt=sa.bindparam("b_now"),
                ).execution_options(synchronize_session=False),
                [f["params"] for f in follow_ups],
            )
            self.result.recomputed += len(follow_ups)
        entries = [self._audit_entry(before, after, row) for before, after, row in audits]
        entries += [f["audit"] for f in follow_ups]
        if self.audit_each_row:
            entries += [self._insert_entry(values) for values in upserts if not self._was_update(values, audits)]
        if entries:
            db.session.execute(sa.insert(AuditLog), entries)
        return errors

    @staticmethod
    def _was_update(values, audits) -> bool:
        return any(after is values for _b, after, _r in audits)

    def _check(self, row, meter, around, replacements):
        """Decide one row: None (unchanged), or (values to upsert, row before, follow-up update)."""
        existing = around.same
        if existing is not None:
            if existing.bill_id is not None:
                if Decimal(existing.reading) == row.reading:
                    return None
                raise RowRejected(
                    f"该表 {period_str(row.period)} 的读数 {format_quantity(existing.reading)} 已出账（账单 #{existing.bill_id}），"
                    "只能通过调整账单更正"
                )
            if (Decimal(existing.reading) == row.reading and existing.read_date == row.read_date
                    and (existing.reader or None) == row.reader and (existing.note or None) == row.note):
                return None
        has_previous = around.previous_period is not None
        previous = Decimal(around.previous_reading) if has_previous else Decimal(meter.start_reading)
        window_start = period_end(around.previous_period) if has_previous else None
        applicable = [
            rep for rep in replacements
            if rep.replaced_date <= _month_end(row.period)
            and (rep.replaced_date > window_start if window_start else rep.replaced_date >= meter.install_date)
        ]
        max_reading = Decimal(meter.max_reading)
        computed = compute_consumption(previous, row.reading, max_reading, applicable)
        if computed is None:
            since = f"（{period_str(around.previous_period)}）" if has_previous else "（起始读数）"
            raise RowRejected(
                f"读数 {format_quantity(row.reading)} 低于上期读数 {format_quantity(previous)}{since}，"
                f"且不是合理的表码翻转（该表最大读数 {format_quantity(max_reading)}），也没有换表记录"
            )
        difference, is_rollover, has_replacement = computed
        multiplier = Decimal(meter.multiplier)
        consumption = (difference * multiplier).quantize(QUANT, rounding=ROUND_HALF_UP)
        is_flagged, flag_reason = _spike(consumption, around.median, around.history_count)
        follow_up = None
        if around.following is not None:
            follow_up = self._follow_up(row, meter, consumption, around.past, around.following, replacements)
        values = {
            "market_id": self.market_id, "meter_id": meter.id, "zone_id": meter.zone_id,
            "period": row.period, "reading": row.reading, "read_date": row.read_date,
            "reader": row.reader, "note": row.note, "previous_reading": previous,
            "consumption": consumption, "is_rollover": is_rollover, "has_replacement": has_replacement,
            "is_flagged": is_flagged, "flag_reason": flag_reason, "batch_id": self.batch_id,
            "created_dt": self.now, "updated_dt": self.now,
        }
        return values, existing, follow_up

    def _follow_up(self, row, meter, consumption, past, following, replacements):
        """The next period's reading measured from this one: the update it needs, or a rejection."""
        max_reading = Decimal(meter.max_reading)
        applicable = [
            rep for rep in replacements
            if period_end(row.period) < rep.replaced_date <= period_end(following.period)
        ]
        computed = compute_consumption(row.reading, Decimal(following.reading), max_reading, applicable)
        if computed is None:
            raise RowRejected(
                f"读数 {format_quantity(row.reading)} 高于下一账期 {period_str(following.period)} 的读数 "
                f"{format_quantity(following.reading)}，请先核对"
            )
        if following.bill_id is not None:
            if Decimal(following.previous_reading) != row.reading:
                raise RowRejected(
                    f"该表下一账期 {period_str(following.period)} 的读数已出账（账单 #{following.bill_id}），"
                    "不能再导入或更正更早账期的读数，请通过调整账单处理"
                )
            return None
        difference, is_rollover, has_replacement = computed
        next_consumption = (difference * Decimal(meter.multiplier)).quantize(QUANT, rounding=ROUND_HALF_UP)
        history = ([consumption] + past)[:SPIKE_HISTORY]
        is_flagged, flag_reason = _spike(next_consumption, _median(history), len(history))
        if (Decimal(following.previous_reading) == row.reading and Decimal(following.consumption) == next_consumption
                and bool(following.is_rollover) == is_rollover and bool(following.has_replacement) == has_replacement
                and bool(following.is_flagged) == is_flagged):
            return None
        before = {"previous_reading": format_quantity(following.previous_reading), "consumption": format_quantity(following.consumption),
                  "is_rollover": bool(following.is_rollover), "is_flagged": bool(following.is_flagged)}
        after = {"previous_reading": format_quantity(row.reading), "consumption": format_quantity(next_consumption),
                 "is_rollover": is_rollover, "is_flagged": is_flagged}
        return {
            "params": {
                "b_id": following.id, "b_previous": row.reading, "b_consumption": next_consumption,
                "b_rollover": is_rollover, "b_replacement": has_replacement, "b_flagged": is_flagged,
                "b_flag_reason": flag_reason, "b_now": self.now,
            },
            "audit": self._entry(
                following.id, f"meter_readings {row.number}@{period_str(following.period)}", before, after,
                f"上一账期 {period_str(row.period)} 的读数变更，重新计算用量",
            ),
        }

    def _entry(self, row_id, summary, before, after, reason, action=AuditAction.update):
        user_id, username, request_id = self.actor
        return {
            "created_dt": self.now, "market_id": self.market_id, "table_name": "meter_readings",
            "row_id": None if row_id is None else str(row_id), "action": action, "before": before,
            "after": after, "summary": summary[:300], "user_id": user_id, "username": username,
            "request_id": request_id, "reason": reason,
        }

    def _audit_entry(self, existing, values, row):
        """Before/after of a corrected (unbilled) reading."""
        before, after = {}, {}
        for name in _AUDIT_FIELDS:
            old, new = _jsonable(getattr(existing, name)), _jsonable(values[name])
            if old != new:
                before[name], after[name] = old, new
        where = f"批次 #{self.batch_id} 第 {row.line_no} 行" if self.batch_id else "手工录入"
        return self._entry(existing.id, f"meter_readings {row.number}@{period_str(row.period)}", before, after,
                           f"更正未出账读数（{where}）")

    def _insert_entry(self, values):
        after = {name: _jsonable(values[name]) for name in ("meter_id", "period", *_AUDIT_FIELDS)}
        row_id = db.session.scalar(
            sa.select(self.table.c.id).where(self.table.c.meter_id == values["meter_id"],
                                             self.table.c.period == values["period"])
        )
        return self._entry(row_id, f"meter_readings {values['meter_id']}@{period_str(values['period'])}",
                           None, after, None, action=AuditAction.insert)


def _pg_text_item(value) -> str:
    if value is None:
        return "NULL"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pg_plain_item(value) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _pg_array(values, text=None) -> str:
    """A PostgreSQL array literal ('{1,NULL,"text"}'): much cheaper to send than a list parameter."""
    if text is None:
        text = any(isinstance(v, str) for v in values)
    if text:
        return "{" + ",".join(map(_pg_text_item, values)) + "}"
    if None not in values and all(type(v) in (int, Decimal) for v in values[:1]):
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join(map(_pg_plain_item, values)) + "}"


def _spike(consumption: Decimal, median, count) -> tuple[bool, str | None]:
    """Flag a consumption above SPIKE_FACTOR x the median of the meter's earlier periods."""
    if median is None or consumption <= SPIKE_FACTOR * median:
        return False, None
    return True, (f"用量 {format_quantity(consumption)} 超过近 {count} 期用量中位数 {format_quantity(median)}"
                  f" 的 {SPIKE_FACTOR} 倍，请复核")


def _jsonable(value):
    """A value as stored in an audit entry: quantities as plain text, empty text as None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (Decimal, int)):
        return format_quantity(Decimal(value))
    if isinstance(value, float):
        return format_quantity(Decimal(str(value)))
    if isinstance(value, date):
        return value.isoformat()
    return value or None


# --- files and batches ------------------------------------------------------------------------


def open_readings_table(source, filename=None):
    """Open an uploaded readings file (CSV in UTF-8/BOM/GBK or XLSX); ReadingFileUnreadable if not."""
    try:
        return read_table(source, filename, columns=READING_COLUMNS, required=REQUIRED_COLUMNS)
    except TableError as exc:
        raise ReadingFileUnreadable(str(exc)) from exc


def estimate_rows(content: bytes, filename: str) -> int:
    """Roughly how many data rows a file holds (for the progress bar)."""
    if content[:4] == b"PK\x03\x04":
        try:
            import openpyxl

            book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
            try:
                return max((book.worksheets[0].max_row or 1) - 1, 0)
            finally:
                book.close()
        except Exception:
            return 0
    return max(content.count(b"\n") - (0 if content.endswith(b"\n") else -1) - 1, 0)


def get_market(code: str) -> Market:
    """The market with this code; NotFound otherwise."""
    market = db.session.scalar(sa.select(Market).where(Market.code == code))
    if market is None:
        raise NotFound(f"市场代码 {code} 不存在")
    return market


def create_import_batch(market_id, kind, filename, content=None, source="upload", user=None, zone_ids=None,
                        total_rows=0) -> ImportBatch:
    """Record an upload (or a CLI run) as a pending batch."""
    batch = ImportBatch(
        market_id=market_id, kind=kind, filename=os.path.basename(filename or "")[:255], source=source,
        status=ImportStatus.pending, content=content, total_rows=total_rows,
        zone_ids=None if zone_ids is None else sorted(zone_ids),
        user_id=getattr(user, "id", None), username=getattr(user, "username", None),
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def import_meter_readings(batch: ImportBatch, source, filename=None, progress=None,
                          chunk_size=CHUNK_SIZE) -> ImportResult:
    """Import a readings file into the batch's market: store good rows, record every bad one."""
    # progress(processed_rows, total_rows, result) is called after every chunk.
    table = open_readings_table(source, filename or batch.filename)
    importer = ReadingImporter(batch.market_id, zone_ids=batch.zone_ids, batch_id=batch.id)
    total = batch.total_rows or 0
    with table:
        headers = list(table.headers)
        if progress:
            progress(0, total, importer.result)
        try:
            iterator = ((line_no, row, row.cells) for line_no, row in table)
            while True:
                chunk = list(itertools.islice(iterator, chunk_size))
                if not chunk:
                    break
                importer.process(chunk)
                if progress:
                    progress(importer.result.processed, max(total, importer.result.processed), importer.result)
        except TableError as exc:
            raise ReadingFileUnreadable(str(exc)) from exc
    result = importer.result
    if result.inserted or result.updated or result.recomputed:
        audit.record_bulk(
            db.session, batch.market_id, "meter_readings",
            f"导入抄表读数（批次 #{batch.id}，{batch.filename}）：新增 {result.inserted}，更正 {result.updated}，"
            f"未变 {result.unchanged}，拒绝 {result.rejected}，待复核 {result.flagged}",
            after=result.counts(),
        )
    batch.headers = {"readings": headers}
    finish_batch(batch, result)
    return result


def finish_batch(batch: ImportBatch, result: ImportResult) -> None:
    """Write the final counts on the batch and drop the uploaded bytes."""
    batch.status = ImportStatus.done
    batch.total_rows = result.processed
    batch.processed_rows = result.processed
    batch.inserted_count = result.inserted
    batch.updated_count = result.updated
    batch.unchanged_count = result.unchanged
    batch.rejected_count = result.rejected
    batch.flagged_count = result.flagged
    batch.rollover_count = result.rollover
    batch.finished_dt = now_utc()
    batch.started_dt = result.started_dt
    batch.message = None
    batch.content = None
    db.session.flush()


def fail_batch(batch: ImportBatch, message: str) -> None:
    """Mark a batch as failed with the reason the clerk will see."""
    batch.status = ImportStatus.failed
    batch.message = message[:2000]
    batch.finished_dt = now_utc()
    if batch.started_dt is None:
        batch.started_dt = batch.finished_dt
    db.session.flush()


def record_meter_reading(market_id, values: dict, zone_ids=None) -> dict:
    """Check and store one reading typed in by hand, with the same rules as the file import."""
    # values: meter_number, period, reading, read_date, reader, note (text, as in a file row).
    importer = ReadingImporter(market_id, zone_ids=zone_ids, audit_each_row=True)
    cells = [values.get(key) or "" for key in READING_COLUMNS]
    importer.process([(1, {k: str(v or "") for k, v in values.items()}, cells)])
    result = importer.result
    if result.rejected:
        raise ValidationFailed(result.errors[0].reason, code="reading_rejected")
    if result.unchanged:
        return {"status": "unchanged"}
    outcome = result.outcomes[0]
    return {
        "status": "created" if outcome["created"] else "updated",
        "consumption": outcome["consumption"],
        "is_flagged": outcome["is_flagged"],
        "flag_reason": outcome["flag_reason"],
        "is_rollover": outcome["is_rollover"],
        "has_replacement": outcome["has_replacement"],
        "previous_reading": outcome["previous_reading"],
    }


def write_readings_template(target, fmt="xlsx", english=False) -> None:
    """Write the readings import template (header row and two example rows)."""
    headers = TEMPLATE_HEADERS_EN if english else TEMPLATE_HEADERS
    today = today_local()
    last = period_str(today.replace(day=1))
    examples = [
        ["E-A001", last, "12345.6", today.isoformat(), "张三", ""],
        ["W-A001", last, "321", today.isoformat(), "张三", "表盘有水汽"],
    ]
    write_template(target, fmt, headers, examples)


def write_batch_error_file(batch: ImportBatch, target, fmt="csv", sheet="readings") -> int:
    """Write the batch's rejected rows (original columns plus the reason) for correction."""
    headers = (batch.headers or {}).get(sheet) or TEMPLATE_HEADERS

    def rows():
        query = (
            sa.select(ImportRowError.cells, ImportRowError.reason)
            .where(ImportRowError.batch_id == batch.id, ImportRowError.sheet == sheet)
            .order_by(ImportRowError.line_no, ImportRowError.id)
            .execution_options(yield_per=2000)
        )
        for cells, reason in db.session.execute(query):
            yield cells, reason

    return write_error_file(target, fmt, headers, rows())


def batch_errors(batch: ImportBatch, limit=200, sheet=None):
    """The first rejected rows of a batch, by line."""
    query = sa.select(ImportRowError).where(ImportRowError.batch_id == batch.id)
    if sheet:
        query = query.where(ImportRowError.sheet == sheet)
    from app.services.master_import import ORDER

    sheet_order = sa.case({key: n for n, key in enumerate(ORDER)}, value=ImportRowError.sheet, else_=len(ORDER))
    return db.session.scalars(query.order_by(sheet_order, ImportRowError.line_no).limit(limit)).all()


def visible_batches(user, market_id=None, kind=ImportKind.readings):
    """The batches a user may see: everyone's for unrestricted roles, their own for a Manager."""
    from app.services.scope import visible_zone_ids

    query = sa.select(ImportBatch).where(ImportBatch.kind == kind)
    if market_id is not None:
        query = query.where(ImportBatch.market_id == market_id)
    if visible_zone_ids(user) is not None:
        query = query.where(ImportBatch.user_id == user.id)
    return query.order_by(ImportBatch.id.desc())


def can_see_batch(user, batch: ImportBatch) -> bool:
    """Whether the user may open a batch (Managers: only their own uploads)."""
    from app.services.scope import visible_zone_ids

    return visible_zone_ids(user) is None or batch.user_id == user.id
