"""The billing run (出账): from leases, prices and meter readings to one bill per lease per period.

How a run works (docs/billing.md has the rules and worked examples):

1. `compute_lines` writes every line of the period into a staging table under a fresh
   batch token, with one INSERT ... SELECT per kind of fee (fixed, per m², metered flat,
   metered tiered, pending charges) plus the public-meter shares (公摊), which are split in
   Python with `apportion` and inserted in chunks. Only leases without a (non-void) regular
   bill for the period are computed, so re-running a period bills just the leases added since.
2. A preview (`preview_billing`) stops there: the batch stays in the staging table so the
   preview page can total it and page through it; nothing is posted.
3. Posting (`post_billing_run`) locks the market, computes a fresh batch into a temporary
   table of the same shape (no WAL, its own statistics, gone at commit or rollback) and, in the
   same transaction, inserts the bills (one per lease, amount = SUM of its staged lines,
   numbered JJ-202611-000123), copies the lines onto them, marks the readings and charges
   billed, deletes the period's preview rows and updates the run row. The edge commits once:
   all bills or none.
"""
from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, BillingRun, BillLine, FeeItem, FeeTier, Market, Meter, Zone
from app.models.bills import BillingStagedLine
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, PricingMode, RunStatus
from app.models.base import UTCDateTime
from app.models.readings import MeterReading
from app.services import audit
from app.services import billing_sql as q
from app.services.exceptions import Conflict, NotFound, ValidationFailed
from app.utils.dates import add_months, now_utc, period_end, period_str, today_local
from app.utils.money import apportion, format_yuan, to_fen

#: How many meter numbers a run report keeps (the full list is on the preview page / CLI).
REPORT_SAMPLE = 200
#: Steps of a posting, for the progress bar.
POST_STEPS = (
    "固定费用", "按面积费用", "计量费用", "公摊", "一次性费用", "生成账单", "生成明细", "标记抄表与费用", "完成",
)
#: The temporary table a posting stages into (dropped at commit or rollback).
POST_TABLE = "billing_post_lines"


class BillingError(Conflict):
    code = "billing_error"


# --------------------------------------------------------------------------------------------
# Overdue: the one SQL definition, reused by lists, tasks and dashboards
# --------------------------------------------------------------------------------------------


def overdue_clause(today: date | None = None):
    """SQL condition for an overdue bill (逾期): open, due date passed, still owing money."""
    today = today or today_local()
    return sa.and_(
        Bill.status.in_(OPEN_BILL_STATUSES),
        Bill.due_date < today,
        Bill.outstanding_fen > 0,
    )


# --------------------------------------------------------------------------------------------
# Reference arithmetic (the SQL does the same; adjustments and the docs use these)
# --------------------------------------------------------------------------------------------


def tiered_amount_fen(consumption: Decimal, tiers, flat_rate_fen: Decimal | None = None) -> int:
    """Price a consumption: split over [from_qty, to_qty) bands at each band's rate, half-up to fen.

    `tiers` is a list of (from_qty, to_qty or None, rate_fen); without tiers the flat rate applies.
    """
    if not tiers:
        return to_fen(Decimal(consumption) * Decimal(flat_rate_fen or 0))
    total = Decimal(0)
    for low, high, rate in tiers:
        upper = consumption if high is None else min(consumption, Decimal(high))
        total += max(Decimal(0), upper - Decimal(low)) * Decimal(rate)
    return to_fen(total)


def prorated_amount_fen(rate_fen: Decimal, quantity: Decimal, months: int, days: int, window_days: int) -> int:
    """rate x quantity x months x days in lease / days in the billing window, half-up to fen."""
    exact = Decimal(rate_fen) * Decimal(quantity) * months * days / window_days
    return to_fen(exact)


def billing_window(period: date, months: int) -> tuple[date, date]:
    """The billing window of a cycle starting at `period`: its first and last day."""
    return period, add_months(period, months) - timedelta(days=1)


def tier_text(tiers, unit_label: str | None) -> str:
    """Tiers as shown on a bill line: ' 阶梯 0-200@0.68 200以上@0.98元/kWh'."""
    parts = []
    for low, high, rate in tiers:
        low_text = _plain(low)
        band = f"{low_text}以上" if high is None else f"{low_text}-{_plain(high)}"
        parts.append(f"{band}@{_plain(Decimal(rate) / 100)}")
    return " 阶梯 " + " ".join(parts) + f"元/{unit_label or ''}"


def _plain(value) -> str:
    value = Decimal(value)
    text = format(value.normalize(), "f")
    return text


# --------------------------------------------------------------------------------------------
# Computing a period's lines into the staging table
# --------------------------------------------------------------------------------------------


@dataclass
class Computation:
    """One computed batch of staged lines and what the report needs."""

    batch: str
    market_id: int
    period: date
    unapportioned: list = field(default_factory=list)


def _dialect() -> q.SqlDialect:
    return q.SqlDialect(db.session.get_bind().dialect.name)


def _params(market_id: int, period: date, batch: str) -> tuple[dict, dict[int, int]]:
    """Bind parameters shared by the statements, and the days of each cycle's window."""
    windows = {m: billing_window(period, m) for m in (1, 3, 12)}
    window_days = {m: (end - start).days + 1 for m, (start, end) in windows.items()}
    params = {
        "market_id": market_id,
        "period": period,
        "period_end": period_end(period),
        "window_end_3": windows[3][1],
        "window_end_12": windows[12][1],
        "period_index": period.year * 12 + period.month,
        "batch": batch,
        "now": now_utc(),
    }
    return params, window_days


_BIND_RE = re.compile(r"(?<![:\w]):(\w+)")
_TYPES = {
    "period": sa.Date(),
    "period_end": sa.Date(),
    "window_end_3": sa.Date(),
    "window_end_12": sa.Date(),
    "issue_date": sa.Date(),
    "due_date": sa.Date(),
    "now": UTCDateTime(),
}


def _execute(sql: str, params: dict):
    """Run one statement with typed date/time parameters; returns the result."""
    stmt = sa.text(sql)
    names = set(_BIND_RE.findall(sql))
    binds = [sa.bindparam(name, type_=type_) for name, type_ in _TYPES.items() if name in names]
    expanding = [sa.bindparam(name, expanding=True) for name in ("fee_item_ids", "zone_ids") if name in names]
    if binds or expanding:
        stmt = stmt.bindparams(*binds, *expanding)
    return db.session.execute(stmt, {k: v for k, v in params.items() if k in names})


def _tier_map(market_id: int) -> dict[int, list]:
    rows = db.session.execute(
        sa.select(FeeTier.fee_item_id, FeeTier.from_qty, FeeTier.to_qty, FeeTier.rate_fen)
        .where(FeeTier.market_id == market_id)
        .order_by(FeeTier.fee_item_id, FeeTier.from_qty)
    )
    tiers = defaultdict(list)
    for item_id, low, high, rate in rows:
        tiers[item_id].append((low, high, rate))
    return dict(tiers)


def _tier_text_case(market_id: int, params: dict) -> str:
    """A SQL CASE giving each tiered fee item's tier text (bound as parameters)."""
    tiers = _tier_map(market_id)
    if not tiers:
        return "''"
    labels = dict(db.session.execute(sa.select(FeeItem.id, FeeItem.unit_label).where(FeeItem.id.in_(tiers))).all())
    whens = []
    for item_id, bands in sorted(tiers.items()):
        name = f"tier_text_{item_id}"
        params[name] = tier_text(bands, labels.get(item_id))
        whens.append(f"WHEN {int(item_id)} THEN :{name}")
    return "(CASE mr.fee_item_id " + " ".join(whens) + " ELSE '' END)"


def compute_lines(market_id: int, period: date, batch: str | None = None, progress=None,
                  target: str = q.STAGING) -> Computation:
    """Compute every line of the period for leases not billed yet into the staging table."""
    _check_period(period)
    batch = batch or uuid.uuid4().hex
    params, window_days = _params(market_id, period, batch)
    d = _dialect()
    step = _stepper(progress)
    step(0)
    _execute(q.fixed_lines(d, window_days, target), params)
    step(1)
    _execute(q.per_area_lines(d, window_days, target), params)
    step(2)
    tier_case = _tier_text_case(market_id, params)
    _execute(q.metered_lines(d, window_days, tier_case, target), params)
    step(3)
    unapportioned = _stage_public_shares(market_id, period, batch, params, window_days, target)
    step(4)
    _execute(q.charge_lines(d, window_days, target), params)
    return Computation(batch=batch, market_id=market_id, period=period, unapportioned=unapportioned)


def _staging_table(name: str) -> sa.Table:
    """The staging table, or a temporary table of the same shape (no foreign keys) for a posting."""
    if name == q.STAGING:
        return BillingStagedLine.__table__
    columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, autoincrement=c.primary_key, nullable=c.nullable)
        for c in BillingStagedLine.__table__.columns
    ]
    return sa.Table(name, sa.MetaData(), *columns, sa.Index(f"ix_{name}_lease", "lease_id"),
                    prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _create_post_table() -> sa.Table:
    """A fresh temporary staging table for this transaction (PostgreSQL drops it at commit)."""
    d = _dialect()
    db.session.execute(sa.text(f"DROP TABLE IF EXISTS {'pg_temp' if d.pg else 'temp'}.{POST_TABLE}"))
    table = _staging_table(POST_TABLE)
    table.create(bind=db.session.connection())
    return table


def _stepper(progress):
    def step(index):
        if progress is not None:
            progress(index, len(POST_STEPS), POST_STEPS[index])

    return step


def _public_fee_items(market_id: int) -> dict[str, FeeItem]:
    """Per meter type, the metered fee item that prices public meters (lowest sort order)."""
    items = db.session.scalars(
        sa.select(FeeItem)
        .where(FeeItem.market_id == market_id, FeeItem.pricing_mode == PricingMode.metered,
               FeeItem.is_active.is_(True), FeeItem.meter_type.is_not(None))
        .order_by(FeeItem.sort_order, FeeItem.id)
    ).all()
    chosen = {}
    for item in items:
        chosen.setdefault(item.meter_type.value, item)
    return chosen


def _stage_public_shares(market_id, period, batch, params, window_days, target=q.STAGING) -> list[dict]:
    """Split each unbilled public-meter reading of a zone over that zone's units billed now, by area."""
    readings = db.session.execute(
        sa.select(MeterReading.id, MeterReading.consumption, MeterReading.previous_reading, MeterReading.reading,
                  Meter.id, Meter.number, Meter.zone_id, Meter.meter_type, Meter.unit_label)
        .join(Meter, Meter.id == MeterReading.meter_id)
        .where(MeterReading.market_id == market_id, MeterReading.period == period,
               MeterReading.billed_dt.is_(None), Meter.is_public.is_(True), Meter.unit_id.is_(None))
        .order_by(Meter.zone_id, Meter.number)
    ).all()
    if not readings:
        return []
    items = _public_fee_items(market_id)
    wanted = [r for r in readings if r.meter_type.value in items]
    unapportioned = [{"meter": r.number, "reason": "没有对应的计量收费项目"} for r in readings if r not in wanted]
    if not wanted:
        return unapportioned
    fee_ids = sorted({items[r.meter_type.value].id for r in wanted})
    zone_ids = sorted({r.zone_id for r in wanted})
    unit_rows = _execute(
        q.public_units(_dialect(), window_days),
        {**params, "fee_item_ids": fee_ids, "zone_ids": zone_ids},
    ).all()
    by_zone_item = defaultdict(list)
    for row in unit_rows:
        by_zone_item[(row.zone_id, row.fee_item_id)].append(row)
    now = params["now"]
    staged = []
    for r in wanted:
        item = items[r.meter_type.value]
        units = by_zone_item.get((r.zone_id, item.id), [])
        if not units:
            unapportioned.append({"meter": r.number, "reason": "本片区没有本期出账的租户"})
            continue
        total_fen = to_fen(Decimal(r.consumption) * Decimal(item.default_rate_fen))
        areas = [Decimal(str(u.area_m2)) for u in units]
        # Integer weights (ten-thousandths of a m²): the same proportions, much faster to split.
        parts = apportion(total_fen, [int(area * 10000) for area in areas])
        total_area = sum(areas)
        per_lease = {}
        for unit, area, part in zip(units, areas, parts):
            entry = per_lease.setdefault(unit.lease_id, {"merchant_id": unit.merchant_id, "area": Decimal(0),
                                                         "amount": 0, "unit_id": unit.unit_id, "count": 0})
            entry["area"] += area
            entry["amount"] += part
            entry["count"] += 1
        for lease_id, entry in per_lease.items():
            description = (
                f"公摊{item.name} {r.number} 本期 {_plain(r.consumption)}{r.unit_label or ''}"
                f" x {_plain(Decimal(item.default_rate_fen) / 100)}元 = {format_yuan(total_fen)}，"
                f"按面积 {_plain(entry['area'])}/{_plain(total_area)}m²"
            )
            staged.append({
                "batch": batch, "market_id": market_id, "period": period, "line_kind": "public",
                "sort_key": item.sort_order * 10 + q.KIND_RANK["public"], "lease_id": lease_id,
                "merchant_id": entry["merchant_id"], "zone_id": r.zone_id, "fee_item_id": item.id,
                "unit_id": entry["unit_id"] if entry["count"] == 1 else None, "meter_id": r[4],
                "reading_id": r[0], "charge_id": None, "description": description[:200],
                "quantity": entry["area"], "unit_label": "m²", "rate_fen": None, "amount_fen": entry["amount"],
                "service_start": period, "service_end": period_end(period), "created_dt": now,
            })
    _bulk_insert(_staging_table(target), staged)
    return unapportioned


def _bulk_insert(table: sa.Table, rows: list[dict]) -> None:
    """Insert many rows in this transaction: COPY on PostgreSQL (an executemany there is one round
    trip per row), executemany on SQLite (in-process, already fast)."""
    if not rows:
        return
    if not _dialect().pg:
        db.session.execute(table.insert(), rows)
        return
    names = [c.name for c in table.columns if c.name in rows[0]]
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])


def _check_period(period: date) -> None:
    if period.day != 1:
        raise ValidationFailed("账期必须是某月的第一天")
    latest = add_months(today_local().replace(day=1), 1)
    if period > latest:
        raise ValidationFailed(f"不能为 {period_str(period)} 出账：最晚只能出下个月（{period_str(latest)}）的账")


# --------------------------------------------------------------------------------------------
# Reading a staged batch: totals, bills with lines, missing readings
# --------------------------------------------------------------------------------------------


@dataclass
class ZoneTotal:
    zone_id: int
    zone_name: str
    bills: int
    lines: int
    total_fen: int


@dataclass
class BatchSummary:
    """Totals of a staged batch, overall and per zone (restricted to visible zones when given)."""

    batch: str
    bills: int
    lines: int
    total_fen: int
    zones: list[ZoneTotal]
    kinds: dict[str, int]


def _zone_filter(query, zone_ids):
    if zone_ids is None:
        return query
    return query.where(BillingStagedLine.zone_id.in_(sorted(zone_ids) or [-1]))


def summarize_batch(batch: str, zone_ids=None) -> BatchSummary:
    """Per-zone and overall bills, lines and amounts of a staged batch."""
    s = BillingStagedLine
    rows = db.session.execute(
        _zone_filter(
            sa.select(s.zone_id, Zone.name, sa.func.count(sa.distinct(s.lease_id)), sa.func.count(s.id),
                      sa.func.coalesce(sa.func.sum(s.amount_fen), 0))
            .join(Zone, Zone.id == s.zone_id)
            .where(s.batch == batch)
            .group_by(s.zone_id, Zone.name, Zone.code)
            .order_by(Zone.code),
            zone_ids,
        )
    ).all()
    zones = [ZoneTotal(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]
    kinds = dict(sorted(
        ((kind, int(total)) for kind, total in db.session.execute(
            _zone_filter(sa.select(s.line_kind, sa.func.sum(s.amount_fen)).where(s.batch == batch)
                         .group_by(s.line_kind), zone_ids)
        )),
        key=lambda item: q.KIND_RANK.get(item[0], 99),
    ))
    return BatchSummary(
        batch=batch,
        bills=sum(z.bills for z in zones),
        lines=sum(z.lines for z in zones),
        total_fen=sum(z.total_fen for z in zones),
        zones=zones,
        kinds=kinds,
    )


@dataclass
class StagedBill:
    lease_id: int
    lease_code: str
    merchant_name: str
    zone_name: str
    total_fen: int
    lines: list = field(default_factory=list)


def staged_bills(batch: str, page: int = 0, page_size: int = 20, zone_ids=None) -> list[StagedBill]:
    """One page of a staged batch as bills (per lease, in posting order) with their lines."""
    from app.models import Lease, Merchant

    s = BillingStagedLine
    groups = db.session.execute(
        _zone_filter(
            sa.select(s.lease_id, Lease.code, Merchant.name, Zone.name, sa.func.sum(s.amount_fen))
            .join(Lease, Lease.id == s.lease_id)
            .join(Merchant, Merchant.id == s.merchant_id)
            .join(Zone, Zone.id == s.zone_id)
            .where(s.batch == batch)
            .group_by(s.lease_id, Lease.code, Merchant.name, Zone.name, Zone.code)
            .order_by(Zone.code, Lease.code, s.lease_id)
            .limit(page_size)
            .offset(page * page_size),
            zone_ids,
        )
    ).all()
    bills = {g[0]: StagedBill(g[0], g[1], g[2], g[3], int(g[4])) for g in groups}
    if bills:
        lines = db.session.scalars(
            sa.select(s).where(s.batch == batch, s.lease_id.in_(list(bills))).order_by(s.lease_id, s.sort_key, s.id)
        ).all()
        for line in lines:
            bills[line.lease_id].lines.append(line)
    return list(bills.values())


def latest_preview_batch(market_id: int, period: date) -> str | None:
    """The batch token of the latest preview of a period, if one is staged."""
    s = BillingStagedLine
    return db.session.scalar(
        sa.select(s.batch).where(s.market_id == market_id, s.period == period).order_by(s.id.desc()).limit(1)
    )


def missing_readings(market_id: int, period: date, zone_ids=None) -> list:
    """Active meters a metered fee needs for the period that have no reading yet (to chase)."""
    params, window_days = _params(market_id, period, "")
    rows = _execute(q.missing_readings(_dialect(), window_days), params).all()
    if zone_ids is not None:
        rows = [r for r in rows if r.zone_id in zone_ids]
    return rows


@dataclass
class PreviewResult:
    batch: str
    summary: BatchSummary
    missing: list
    unapportioned: list


def preview_billing(market_id: int, period: date, zone_ids=None) -> PreviewResult:
    """Compute a period's bills without posting anything; the batch stays staged for the preview page."""
    _market(market_id)
    s = BillingStagedLine
    db.session.execute(sa.delete(s).where(s.market_id == market_id, s.period == period))
    computation = compute_lines(market_id, period)
    db.session.flush()
    return PreviewResult(
        batch=computation.batch,
        summary=summarize_batch(computation.batch, zone_ids),
        missing=missing_readings(market_id, period, zone_ids),
        unapportioned=computation.unapportioned,
    )


def purge_stale_previews(older_than: timedelta = timedelta(days=1)) -> int:
    """Delete staged preview rows older than `older_than` (previews nobody posted); returns rows deleted."""
    s = BillingStagedLine
    return db.session.execute(sa.delete(s).where(s.created_dt < now_utc() - older_than)).rowcount


def discard_preview(market_id: int, period: date) -> None:
    """Delete a period's staged preview rows."""
    s = BillingStagedLine
    db.session.execute(sa.delete(s).where(s.market_id == market_id, s.period == period))


# --------------------------------------------------------------------------------------------
# Runs: request, post, fail
# --------------------------------------------------------------------------------------------


def _market(market_id: int) -> Market:
    market = db.session.get(Market, market_id)
    if market is None:
        raise NotFound("市场不存在")
    return market


def get_market_by_code(code: str) -> Market:
    """The market with this code, or NotFound."""
    market = db.session.scalar(sa.select(Market).where(Market.code == code))
    if market is None:
        raise NotFound(f"市场 {code} 不存在")
    return market


def lock_market(market_id: int) -> None:
    """Serialise bill numbering and postings of a market (a row lock on PostgreSQL)."""
    db.session.execute(
        sa.select(Market.id).where(Market.id == market_id).with_for_update(key_share=True)
    ).all()


def billing_job_id(market_code: str, period: date) -> str:
    """The RQ job id of a market's run for a period: one job per market and period."""
    return f"billing-{market_code}-{period_str(period)}"


def request_billing_run(market_id: int, period: date, user_id=None, issue_date: date | None = None) -> BillingRun:
    """Create (or re-arm) the run row of a market and period, ready to be posted by the job."""
    market = _market(market_id)
    _check_period(period)
    run = db.session.scalar(
        sa.select(BillingRun).where(BillingRun.market_id == market_id, BillingRun.period == period)
    )
    if run is None:
        run = BillingRun(market_id=market_id, period=period, status=RunStatus.queued, bill_count=0,
                         line_count=0, total_fen=0, progress_done=0, progress_total=len(POST_STEPS))
        db.session.add(run)
    elif run.status != RunStatus.posted:
        run.status = RunStatus.queued
    run.job_id = billing_job_id(market.code, period)
    run.issue_date = issue_date
    run.created_by_id = user_id or run.created_by_id
    run.error = None
    run.progress_done = 0
    run.progress_total = len(POST_STEPS)
    db.session.flush()
    return run


@dataclass
class RunResult:
    run_id: int
    period: date
    new_bills: int
    new_lines: int
    new_total_fen: int
    bill_count: int
    total_fen: int
    was_posted: bool
    missing: list
    unapportioned: list
    message: str

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id, "period": period_str(self.period), "new_bills": self.new_bills,
            "new_lines": self.new_lines, "new_total_fen": self.new_total_fen, "bill_count": self.bill_count,
            "total_fen": self.total_fen, "was_posted": self.was_posted, "missing_readings": len(self.missing),
            "message": self.message,
        }


def _next_sequence(market: Market, prefix: str) -> int:
    """The highest sequence number used by the market's bills with this number prefix."""
    seq = db.session.scalar(
        sa.select(sa.func.max(sa.cast(sa.func.substr(Bill.number, len(prefix) + 1), sa.Integer)))
        .where(Bill.market_id == market.id, Bill.number.startswith(prefix, autoescape=True))
    )
    return int(seq or 0)


def bill_number_prefix(market: Market, period: date) -> str:
    """'JJ-202611-': the market code and the bill's period."""
    return f"{market.code}-{period:%Y%m}-"


def allocate_bill_number(market: Market, period: date) -> str:
    """The next bill number of a market for a period (call with the market locked)."""
    prefix = bill_number_prefix(market, period)
    return f"{prefix}{_next_sequence(market, prefix) + 1:06d}"


def due_date_for(market: Market, issue_date: date) -> date:
    """Market rule: bills fall due `due_days` after their issue date."""
    return issue_date + timedelta(days=market.due_days or 0)


def post_billing_run(run_id: int, progress=None) -> RunResult:
    """Post a run atomically: bill every lease without a regular bill for the period (flush, no commit)."""
    run = db.session.get(BillingRun, run_id)
    if run is None:
        raise NotFound("出账批次不存在")
    market = _market(run.market_id)
    lock_market(market.id)
    db.session.refresh(run)
    period = run.period
    was_posted = run.status == RunStatus.posted
    issue_date = run.issue_date or today_local()
    due_date = due_date_for(market, issue_date)
    if progress is not None:
        progress(0, len(POST_STEPS), "开始", status=RunStatus.running)
    s = BillingStagedLine
    db.session.execute(sa.delete(s).where(s.market_id == market.id, s.period == period))  # stale previews
    d = _dialect()
    t = _create_post_table().c
    computation = compute_lines(market.id, period, progress=progress, target=POST_TABLE)
    if d.pg:
        db.session.execute(sa.text(f"ANALYZE {POST_TABLE}"))  # a temporary table has no statistics otherwise
    params, _ = _params(market.id, period, computation.batch)
    staged_count, staged_total = db.session.execute(
        sa.select(sa.func.count(t.id), sa.func.coalesce(sa.func.sum(t.amount_fen), 0))
    ).one()
    kinds = dict(db.session.execute(sa.select(t.line_kind, sa.func.count()).group_by(t.line_kind)).all())
    new_bills = 0
    if staged_count:
        _step(progress, 5)
        prefix = bill_number_prefix(market, period)
        new_bills = _execute(q.insert_bills(d, POST_TABLE), {
            **params, "prefix": prefix, "base_seq": _next_sequence(market, prefix), "issue_date": issue_date,
            "due_date": due_date, "run_id": run.id,
        }).rowcount
        _step(progress, 6)
        copied = _execute(q.insert_lines(POST_TABLE), {**params, "run_id": run.id}).rowcount
        if copied != staged_count:
            raise BillingError(f"明细复制不完整（{copied}/{staged_count}），已回滚")
        _step(progress, 7)
        marked = _execute(q.mark_readings_billed(POST_TABLE), {**params, "run_id": run.id}).rowcount
        if marked != kinds.get("metered", 0):
            raise BillingError("抄表记录已被其他操作出账，请重新出账")
        _execute(q.mark_public_readings_billed(POST_TABLE), params)
        charges = kinds.get("charge", 0)
        if _execute(q.mark_charges_billed(POST_TABLE), {**params, "run_id": run.id}).rowcount != charges:
            raise BillingError("一次性费用已被其他操作出账，请重新出账")
        audit.record_bulk(
            db.session, market.id, "bills",
            f"出账 {period_str(period)}：{new_bills} 张账单，{staged_count} 条明细，合计 {format_yuan(int(staged_total))}",
            after={"run_id": run.id, "bills": new_bills, "lines": int(staged_count), "total_fen": int(staged_total),
                   "readings": int(marked), "charges": int(charges)},
        )
    if not d.pg:
        db.session.execute(sa.text(f"DROP TABLE temp.{POST_TABLE}"))
    totals = db.session.execute(
        sa.select(sa.func.count(Bill.id), sa.func.coalesce(sa.func.sum(Bill.amount_fen), 0))
        .where(Bill.run_id == run.id, Bill.status != BillStatus.void)
    ).one()
    line_total = db.session.scalar(
        sa.select(sa.func.count(BillLine.id)).join(Bill, Bill.id == BillLine.bill_id)
        .where(Bill.run_id == run.id, Bill.status != BillStatus.void)
    )
    missing = missing_readings(market.id, period)
    message = _run_message(period, was_posted, new_bills, int(staged_total), int(totals[0]), missing)
    # Last progress write before this transaction touches the run row (a progress writer on
    # another connection would otherwise wait for our row lock).
    if progress is not None:
        progress(len(POST_STEPS), len(POST_STEPS), POST_STEPS[-1])
    if not was_posted or new_bills:
        run.issue_date = issue_date
        run.due_date = due_date
    run.status = RunStatus.posted
    run.bill_count = int(totals[0])
    run.total_fen = int(totals[1])
    run.line_count = int(line_total or 0)
    run.progress_done = run.progress_total = len(POST_STEPS)
    run.started_dt = run.started_dt or params["now"]
    run.finished_dt = now_utc()
    run.error = None
    run.report = {
        "message": message, "new_bills": new_bills, "new_lines": int(staged_count),
        "new_total_fen": int(staged_total), "missing_readings": len(missing),
        "missing_sample": [m.number for m in missing[:REPORT_SAMPLE]],
        "unapportioned": computation.unapportioned[:REPORT_SAMPLE],
    }
    db.session.flush()
    return RunResult(
        run_id=run.id, period=period, new_bills=new_bills, new_lines=int(staged_count),
        new_total_fen=int(staged_total), bill_count=run.bill_count, total_fen=run.total_fen,
        was_posted=was_posted, missing=missing, unapportioned=computation.unapportioned, message=message,
    )


def _step(progress, index):
    if progress is not None:
        progress(index, len(POST_STEPS), POST_STEPS[index])


def _run_message(period, was_posted, new_bills, new_total, bill_count, missing) -> str:
    text = period_str(period)
    if was_posted and not new_bills:
        message = f"{text} 账期已过账（共 {bill_count} 张账单），本次没有新的租约需要出账，未重复生成账单。"
    elif was_posted:
        message = f"{text} 账期已过账，本次为新增租约补出 {new_bills} 张账单，合计 {format_yuan(new_total)}。"
    elif not new_bills:
        message = f"{text} 账期没有需要出账的租约。"
    else:
        message = f"{text} 出账完成：{new_bills} 张账单，合计 {format_yuan(new_total)}。"
    if missing:
        message += f" 有 {len(missing)} 块表本期没有抄表读数，未计入计量费用。"
    return message


def mark_run_failed(run_id: int, error: str) -> None:
    """Record that a run's posting failed (nothing of it was posted)."""
    run = db.session.get(BillingRun, run_id)
    if run is None:
        return
    if run.status != RunStatus.posted:
        run.status = RunStatus.failed
    run.error = (error or "")[:2000]
    run.finished_dt = now_utc()
    db.session.flush()


def runs_for_market(market_id: int, limit: int = 24) -> list[BillingRun]:
    """The market's latest runs, newest period first."""
    return db.session.scalars(
        sa.select(BillingRun).where(BillingRun.market_id == market_id).order_by(BillingRun.period.desc()).limit(limit)
    ).all()


__all__ = [
    "BillingError",
    "overdue_clause",
    "tiered_amount_fen",
    "prorated_amount_fen",
    "compute_lines",
    "preview_billing",
    "request_billing_run",
    "post_billing_run",
    "mark_run_failed",
    "missing_readings",
    "summarize_batch",
    "staged_bills",
]
