"""Late fees (滞纳金): rule versions, the daily set-based accrual, its preview, and waivers.

The convention (docs/late-fees.md has worked examples, tests/services/test_latefees.py checks them):

* A bill is overdue on day D when D > due_date. Days due_date+1 .. due_date+grace_days are the
  grace period (宽限期): the exact interest for them is tracked but nothing is charged. From day
  due_date+grace_days+1 on the fee is charged, counted from due_date+1 (the grace days included).
  A bill settled in full within the grace period pays no late fee.
* Day D's exact interest = unpaid principal at the start of D (Shanghai) x the daily rate of the
  rule version in force on D. Simple interest: late fees never bear late fees.
* No per-day rounding: the fee accrued through D is round_half_up(min(exact sum through D, cap)),
  and D's row holds the difference from the fee accrued before. Exact sums are integers in
  millionths of a fen (rates have 6 decimals), so SQLite and PostgreSQL agree to the fen.
* Cap: cap_fen, or cap_percent of the bill's principal (amount_fen), the lower if both. It limits
  the accrued total (waivers are not deducted for the cap).
* Rule versions: the lease's own override (latest effective_from <= D) wins over the market's
  rule; an inactive version means "no late fee from then on". Rows keep their rule_id and are
  never recomputed, so a new version only affects later days.
* The job accrues every day after the market's last accrued day up to D (catch-up); a day at or
  before the last accrued day is never accrued again. Only open bills (issued / partially paid)
  accrue; a bill settled in full stops accruing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from app.extensions import db
from app.models import Bill, Lease, Market, Merchant
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, PaymentStatus, RefundStatus
from app.models.latefees import LateFeeAccrual, LateFeeRule, LateFeeRun, LateFeeWaiver
from app.models.payments import Payment, PaymentAllocation, Refund, RefundAllocation
from app.services import audit
from app.services.exceptions import Conflict, NotFound, ValidationFailed
from app.utils.dates import local_day_bounds_utc, now_utc, today_local
from app.utils.money import format_yuan

#: Exact interest is kept in millionths of a fen: daily_rate has 6 decimal places.
MICRO = 1_000_000
#: The highest daily rate a rule may have (1% a day).
MAX_DAILY_RATE = Decimal("0.01")
MAX_GRACE_DAYS = 365


class days_after(FunctionElement):
    """SQL: whole days from the second date to the first (first - second)."""

    type = sa.Integer()
    inherit_cache = True
    name = "days_after"


@compiles(days_after)
def _days_after_default(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_after, "sqlite")
def _days_after_sqlite(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return (f"CAST(julianday({compiler.process(later, **kw)}) - "
            f"julianday({compiler.process(earlier, **kw)}) AS INTEGER)")


# --------------------------------------------------------------------------- rules


def applicable_rule(market_id: int, lease_id: int | None, day: date) -> LateFeeRule | None:
    """The rule version in force for a lease on a day: its override if any, else the market's."""
    base = sa.select(LateFeeRule).where(LateFeeRule.market_id == market_id, LateFeeRule.effective_from <= day)
    base = base.order_by(LateFeeRule.effective_from.desc()).limit(1)
    if lease_id is not None:
        override = db.session.scalar(base.where(LateFeeRule.lease_id == lease_id))
        if override is not None:
            return override
    return db.session.scalar(base.where(LateFeeRule.lease_id.is_(None)))


def last_accrued_day(market_id: int) -> date | None:
    """The latest day the market's late fees were accrued for (None before the first run)."""
    return db.session.scalar(sa.select(sa.func.max(LateFeeRun.accrual_date)).where(LateFeeRun.market_id == market_id))


def parse_rate(text) -> Decimal:
    """Parse a daily rate typed by a person ("0.0005", "0.05%", "万分之五") into a Decimal."""
    if isinstance(text, Decimal):
        return text
    if isinstance(text, float):
        raise TypeError("rates are Decimal, never float")
    s = str(text).strip()
    named = {"万分之": Decimal("0.0001"), "千分之": Decimal("0.001"), "百分之": Decimal("0.01")}
    digits = dict(zip("零一二三四五六七八九", range(10)))
    for prefix, unit in named.items():
        if s.startswith(prefix):
            rest = s[len(prefix):]
            if rest in digits:
                return unit * digits[rest]
            try:
                return unit * Decimal(rest)
            except InvalidOperation:
                raise ValidationFailed(f"日利率格式不正确：{s}") from None
    try:
        if s.endswith("%"):
            return Decimal(s[:-1]) / 100
        return Decimal(s)
    except InvalidOperation:
        raise ValidationFailed(f"日利率格式不正确：{s}") from None


def validate_rule(rule: LateFeeRule) -> None:
    """Check a rule version's values and that it does not reach back into accrued days."""
    rate = rule.daily_rate
    if rate is None or not isinstance(rate, Decimal):
        raise ValidationFailed("请填写日利率")
    if rate < 0 or rate > MAX_DAILY_RATE:
        raise ValidationFailed(f"日利率应在 0 到 {MAX_DAILY_RATE} 之间")
    if rate.as_tuple().exponent < -6:
        raise ValidationFailed("日利率最多 6 位小数")
    if rule.grace_days is None or not 0 <= rule.grace_days <= MAX_GRACE_DAYS:
        raise ValidationFailed(f"宽限天数应在 0 到 {MAX_GRACE_DAYS} 之间")
    if rule.cap_fen is not None and rule.cap_fen <= 0:
        raise ValidationFailed("封顶金额必须大于 0")
    if rule.cap_percent is not None:
        if not Decimal(0) < rule.cap_percent <= Decimal(100):
            raise ValidationFailed("封顶比例应在 0 到 100 之间")
        if rule.cap_percent.as_tuple().exponent < -2:
            raise ValidationFailed("封顶比例最多 2 位小数")
    if rule.effective_from is None:
        raise ValidationFailed("请填写生效日期")
    if rule.lease_id is not None:
        lease = db.session.get(Lease, rule.lease_id)
        if lease is None or lease.market_id != rule.market_id:
            raise ValidationFailed("租约不属于该市场")
    last = last_accrued_day(rule.market_id)
    if last is not None and rule.effective_from <= last:
        raise Conflict(
            f"{last.isoformat()} 及以前的滞纳金已计提，新规则最早从 {(last + timedelta(days=1)).isoformat()} 起生效",
            code="rule_in_accrued_past",
        )
    clash = sa.select(LateFeeRule.id).where(
        LateFeeRule.market_id == rule.market_id,
        LateFeeRule.effective_from == rule.effective_from,
        LateFeeRule.lease_id.is_(None) if rule.lease_id is None else LateFeeRule.lease_id == rule.lease_id,
    )
    if rule.id is not None:
        clash = clash.where(LateFeeRule.id != rule.id)
    if db.session.scalar(clash) is not None:
        raise Conflict("同一生效日期已有规则版本", code="rule_version_exists")


def create_rule(market_id: int, effective_from: date, daily_rate, grace_days: int = 0, cap_fen: int | None = None,
                cap_percent=None, lease_id: int | None = None, is_active: bool = True,
                note: str | None = None) -> LateFeeRule:
    """Add a late-fee rule version for a market, or a per-lease override (new version, never an edit)."""
    if db.session.get(Market, market_id) is None:
        raise NotFound("市场不存在")
    rule = LateFeeRule(
        market_id=market_id,
        lease_id=lease_id,
        effective_from=effective_from,
        daily_rate=parse_rate(daily_rate),
        grace_days=int(grace_days or 0),
        cap_fen=cap_fen,
        cap_percent=None if cap_percent in (None, "") else Decimal(str(cap_percent)),
        is_active=bool(is_active),
        note=(note or "").strip() or None,
    )
    validate_rule(rule)
    db.session.add(rule)
    db.session.flush()
    return rule


# --------------------------------------------------------------------------- accrual


@dataclass
class DayResult:
    day: date
    row_count: int = 0
    bill_count: int = 0
    amount_fen: int = 0


@dataclass
class AccrualResult:
    market_id: int
    requested_day: date
    days: list[DayResult] = field(default_factory=list)
    #: True when the requested day was already accrued (nothing done).
    already_accrued: bool = False
    last_day_before: date | None = None

    @property
    def amount_fen(self) -> int:
        return sum(d.amount_fen for d in self.days)

    @property
    def row_count(self) -> int:
        return sum(d.row_count for d in self.days)

    @property
    def first_day(self) -> date | None:
        return self.days[0].day if self.days else None


def _first_day_to_accrue(market_id: int, day: date) -> date | None:
    """Where a catch-up through `day` starts, or None when `day` is already accrued."""
    last = last_accrued_day(market_id)
    if last is not None:
        return None if day <= last else last + timedelta(days=1)
    first_rule = db.session.scalar(
        sa.select(sa.func.min(LateFeeRule.effective_from)).where(LateFeeRule.market_id == market_id)
    )
    if first_rule is None or first_rule > day:
        return day
    oldest_due = db.session.scalar(
        sa.select(sa.func.min(Bill.due_date)).where(
            Bill.market_id == market_id, Bill.status.in_(OPEN_BILL_STATUSES), Bill.due_date < day
        )
    )
    if oldest_due is None:
        return day
    return min(max(first_rule, oldest_due + timedelta(days=1)), day)


def accrue_late_fees(market_id: int, day: date, now=None, allow_future: bool = False) -> AccrualResult:
    """Accrue a market's late fees for every day after its last accrued day up to `day` (set-based)."""
    market = db.session.scalar(sa.select(Market).where(Market.id == market_id).with_for_update(key_share=True))
    if market is None:
        raise NotFound("市场不存在")
    if not allow_future and day > today_local():
        raise ValidationFailed(f"不能计提未来日期的滞纳金：{day.isoformat()}")
    now = now or now_utc()
    result = AccrualResult(market_id=market_id, requested_day=day, last_day_before=last_accrued_day(market_id))
    has_rules = db.session.scalar(sa.select(sa.func.count(LateFeeRule.id)).where(LateFeeRule.market_id == market_id))
    if not has_rules:
        # No rule has ever been set: record nothing, so a first rule may still start in the past.
        return result
    start = _first_day_to_accrue(market_id, day)
    if start is None:
        result.already_accrued = True
        return result
    current = start
    while current <= day:
        result.days.append(_accrue_day(market_id, current, now))
        current += timedelta(days=1)
    charged = sum(d.bill_count for d in result.days)
    audit.record_bulk(
        db.session,
        market_id,
        "late_fee_accruals",
        f"滞纳金计提 {start.isoformat()} 至 {day.isoformat()}：{result.row_count} 条记录，"
        f"{charged} 笔账单次计费，合计 {format_yuan(result.amount_fen)}",
        after={"from": start.isoformat(), "to": day.isoformat(), "rows": result.row_count,
               "amount_fen": result.amount_fen},
    )
    db.session.flush()
    return result


def _rule_ids_for_day(market_id: int, day: date) -> tuple[int | None, bool]:
    """(the market rule version in force on `day`, whether any lease override is in force)."""
    market_rule_id = db.session.scalar(
        sa.select(LateFeeRule.id)
        .where(LateFeeRule.market_id == market_id, LateFeeRule.lease_id.is_(None), LateFeeRule.effective_from <= day)
        .order_by(LateFeeRule.effective_from.desc())
        .limit(1)
    )
    has_overrides = db.session.scalar(
        sa.select(sa.func.count(LateFeeRule.id)).where(
            LateFeeRule.market_id == market_id, LateFeeRule.lease_id.is_not(None), LateFeeRule.effective_from <= day
        )
    ) > 0
    return market_rule_id, has_overrides


def accrual_insert(market_id: int, day: date, market_rule_id: int | None, has_overrides: bool, dialect: str, now):
    """The INSERT ... SELECT writing one day's accrual rows for a market's open overdue bills."""
    bills = Bill.__table__
    rules = LateFeeRule.__table__.alias("rr")
    accruals = LateFeeAccrual.__table__
    day_start_utc, _ = local_day_bounds_utc(day)

    # Payments and refunds since the start of the day, to know the principal at the start of it.
    pay, alloc = Payment.__table__, PaymentAllocation.__table__
    paid_since = (
        sa.select(alloc.c.bill_id, sa.cast(sa.func.sum(alloc.c.amount_fen), sa.BigInteger).label("fen"))
        .select_from(alloc.join(pay, pay.c.id == alloc.c.payment_id))
        .where(pay.c.market_id == market_id, pay.c.status == PaymentStatus.succeeded, pay.c.paid_dt >= day_start_utc)
        .group_by(alloc.c.bill_id)
        .subquery("paid_since")
    )
    ref, ref_alloc = Refund.__table__, RefundAllocation.__table__
    refunded_since = (
        sa.select(ref_alloc.c.bill_id, sa.cast(sa.func.sum(ref_alloc.c.amount_fen), sa.BigInteger).label("fen"))
        .select_from(ref_alloc.join(ref, ref.c.id == ref_alloc.c.refund_id))
        .where(ref.c.market_id == market_id, ref.c.status == RefundStatus.succeeded,
               ref.c.succeeded_dt >= day_start_utc)
        .group_by(ref_alloc.c.bill_id)
        .subquery("refunded_since")
    )

    from_ = bills
    if has_overrides:
        plain = LateFeeRule.__table__
        latest = (
            sa.select(plain.c.lease_id, sa.func.max(plain.c.effective_from).label("effective_from"))
            .where(plain.c.market_id == market_id, plain.c.lease_id.is_not(None), plain.c.effective_from <= day)
            .group_by(plain.c.lease_id)
            .subquery("latest_override")
        )
        overrides = (
            sa.select(plain.c.lease_id, plain.c.id.label("rule_id"))
            .select_from(plain.join(latest, sa.and_(latest.c.lease_id == plain.c.lease_id,
                                                    latest.c.effective_from == plain.c.effective_from)))
            .subquery("ov")
        )
        from_ = from_.outerjoin(overrides, overrides.c.lease_id == bills.c.lease_id)
        rule_id = sa.func.coalesce(overrides.c.rule_id, sa.literal(market_rule_id, sa.Integer))
    else:
        rule_id = sa.literal(market_rule_id, sa.Integer)
    from_ = from_.join(rules, rules.c.id == rule_id)
    from_ = from_.outerjoin(paid_since, paid_since.c.bill_id == bills.c.id)
    from_ = from_.outerjoin(refunded_since, refunded_since.c.bill_id == bills.c.id)

    # The bill's latest accrual row before the day carries its running totals.
    if dialect == "postgresql":
        prev = (
            sa.select(accruals.c.cumulative_micro_fen, accruals.c.cumulative_fen)
            .where(accruals.c.bill_id == bills.c.id, accruals.c.accrual_date < day)
            .order_by(accruals.c.accrual_date.desc())
            .limit(1)
            .lateral("prev")
        )
        from_ = from_.outerjoin(prev, sa.true())
    else:
        before = accruals.alias("before")
        prev = accruals.alias("prev")
        latest_date = (
            sa.select(sa.func.max(before.c.accrual_date))
            .where(before.c.bill_id == bills.c.id, before.c.accrual_date < day)
            .correlate(bills)
            .scalar_subquery()
        )
        from_ = from_.outerjoin(prev, sa.and_(prev.c.bill_id == bills.c.id, prev.c.accrual_date == latest_date))

    principal = sa.cast(bills.c.amount_fen - bills.c.paid_fen + sa.func.coalesce(paid_since.c.fen, 0)
                        - sa.func.coalesce(refunded_since.c.fen, 0), sa.BigInteger)
    rate_micro = sa.cast(sa.func.round(rules.c.daily_rate * MICRO), sa.BigInteger)
    percent_cap = (bills.c.amount_fen * sa.cast(sa.func.round(rules.c.cap_percent * 100), sa.BigInteger) + 5000) // 10000
    cap = sa.case(
        (rules.c.cap_fen.is_(None), percent_cap),
        (rules.c.cap_percent.is_(None), rules.c.cap_fen),
        (rules.c.cap_fen < percent_cap, rules.c.cap_fen),
        else_=percent_cap,
    )
    base = (
        sa.select(
            bills.c.id.label("bill_id"),
            bills.c.market_id.label("market_id"),
            rules.c.id.label("rule_id"),
            principal.label("principal_fen"),
            rate_micro.label("rate_micro"),
            cap.label("cap_fen"),
            sa.case((days_after(sa.literal(day, sa.Date), bills.c.due_date) > rules.c.grace_days, 1), else_=0)
            .label("past_grace"),
            sa.func.coalesce(prev.c.cumulative_micro_fen, 0).label("prev_micro"),
            sa.func.coalesce(prev.c.cumulative_fen, 0).label("prev_fen"),
        )
        .select_from(from_)
        .where(
            bills.c.market_id == market_id,
            bills.c.status.in_(OPEN_BILL_STATUSES),
            bills.c.due_date < day,
            rules.c.is_active.is_(True),
        )
        .subquery("base")
    )
    daily = base.c.principal_fen * base.c.rate_micro
    step = (
        sa.select(
            base,
            daily.label("daily_micro"),
            (base.c.prev_micro + daily).label("cum_micro"),
        )
        .where(base.c.principal_fen > 0)
        .subquery("step")
    )
    target = (step.c.cum_micro + MICRO // 2) // MICRO
    capped = sa.case((sa.and_(step.c.cap_fen.is_not(None), target > step.c.cap_fen), step.c.cap_fen), else_=target)
    amount = sa.case((sa.and_(step.c.past_grace == 1, capped > step.c.prev_fen), capped - step.c.prev_fen), else_=0)
    rows = sa.select(step, amount.label("amount")).subquery("rows")
    select = sa.select(
        rows.c.market_id,
        rows.c.bill_id,
        rows.c.rule_id,
        sa.literal(day, sa.Date),
        rows.c.principal_fen,
        rows.c.daily_micro,
        rows.c.cum_micro,
        rows.c.prev_fen + rows.c.amount,
        rows.c.cap_fen,
        rows.c.amount,
        sa.literal(now, LateFeeAccrual.__table__.c.created_dt.type),
    ).where(sa.true())
    columns = ["market_id", "bill_id", "rule_id", "accrual_date", "principal_fen", "daily_micro_fen",
               "cumulative_micro_fen", "cumulative_fen", "cap_fen", "amount_fen", "created_dt"]
    if dialect == "postgresql":
        return (postgresql.insert(accruals).from_select(columns, select)
                .on_conflict_do_nothing(index_elements=["bill_id", "accrual_date"]))
    return sa.insert(accruals).from_select(columns, select).prefix_with("OR IGNORE", dialect="sqlite")


def late_fee_update(market_id: int, day: date, now):
    """The UPDATE setting bills.late_fee_fen = accrued - waived for bills whose fee grew on `day`."""
    bills = Bill.__table__
    accruals = LateFeeAccrual.__table__
    waivers = LateFeeWaiver.__table__
    waived = (
        sa.select(waivers.c.bill_id, sa.cast(sa.func.sum(waivers.c.amount_fen), sa.BigInteger).label("fen"))
        .where(waivers.c.market_id == market_id)
        .group_by(waivers.c.bill_id)
        .subquery("waived")
    )
    grown = (
        sa.select(accruals.c.bill_id, (accruals.c.cumulative_fen - sa.func.coalesce(waived.c.fen, 0)).label("fee"))
        .select_from(accruals.outerjoin(waived, waived.c.bill_id == accruals.c.bill_id))
        .where(accruals.c.market_id == market_id, accruals.c.accrual_date == day, accruals.c.amount_fen > 0)
        .subquery("grown")
    )
    return (sa.update(bills).where(bills.c.id == grown.c.bill_id)
            .values(late_fee_fen=grown.c.fee, updated_dt=now))


def _accrue_day(market_id: int, day: date, now) -> DayResult:
    """Accrue one day for a market: one INSERT ... SELECT, one UPDATE, one summary row."""
    result = DayResult(day=day)
    market_rule_id, has_overrides = _rule_ids_for_day(market_id, day)
    if market_rule_id is not None or has_overrides:
        dialect = db.session.get_bind().dialect.name
        db.session.execute(accrual_insert(market_id, day, market_rule_id, has_overrides, dialect, now))
        counts = db.session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(sa.case((LateFeeAccrual.amount_fen > 0, 1))),
                sa.func.coalesce(sa.func.sum(LateFeeAccrual.amount_fen), 0),
            ).where(LateFeeAccrual.market_id == market_id, LateFeeAccrual.accrual_date == day)
        ).one()
        result.row_count, result.bill_count, result.amount_fen = (int(v) for v in counts)
        if result.bill_count:
            db.session.execute(late_fee_update(market_id, day, now))
    db.session.add(LateFeeRun(market_id=market_id, accrual_date=day, row_count=result.row_count,
                              bill_count=result.bill_count, amount_fen=result.amount_fen, created_dt=now))
    db.session.flush()
    return result


# --------------------------------------------------------------------------- preview


@dataclass
class PreviewLine:
    bill_id: int
    bill_number: str
    merchant_name: str
    zone_id: int
    due_date: date
    principal_fen: int
    amount_fen: int
    late_fee_fen: int


@dataclass
class AccrualPreview:
    result: AccrualResult
    bill_count: int = 0
    amount_fen: int = 0
    lines: list[PreviewLine] = field(default_factory=list)


def preview_late_fees(market_id: int, day: date, zone_ids=None, limit: int = 50) -> AccrualPreview:
    """What accruing through `day` would add, computed by the real accrual inside a rolled-back savepoint."""
    savepoint = db.session.begin_nested()
    try:
        result = accrue_late_fees(market_id, day, allow_future=True)
        preview = AccrualPreview(result=result)
        if result.days:
            first = result.days[0].day
            added = (
                sa.select(LateFeeAccrual.bill_id, sa.func.sum(LateFeeAccrual.amount_fen).label("added"))
                .where(LateFeeAccrual.market_id == market_id, LateFeeAccrual.accrual_date >= first,
                       LateFeeAccrual.accrual_date <= day)
                .group_by(LateFeeAccrual.bill_id)
                .having(sa.func.sum(LateFeeAccrual.amount_fen) > 0)
                .subquery()
            )
            query = (
                sa.select(Bill.id, Bill.number, Merchant.name, Bill.zone_id, Bill.due_date,
                          Bill.amount_fen - Bill.paid_fen, added.c.added, Bill.late_fee_fen)
                .join(added, added.c.bill_id == Bill.id)
                .join(Merchant, Merchant.id == Bill.merchant_id)
            )
            if zone_ids is not None:
                query = query.where(Bill.zone_id.in_(sorted(zone_ids) or [-1]))
            totals = db.session.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(query.subquery().c.added), 0))
            ).one()
            preview.bill_count, preview.amount_fen = int(totals[0]), int(totals[1])
            for row in db.session.execute(query.order_by(added.c.added.desc(), Bill.id).limit(limit)):
                preview.lines.append(PreviewLine(row[0], row[1], row[2], row[3], row[4], max(int(row[5]), 0),
                                                 int(row[6]), int(row[7])))
        return preview
    finally:
        savepoint.rollback()
        db.session.expire_all()


# --------------------------------------------------------------------------- waivers


def waivable_fen(bill: Bill) -> int:
    """The part of a bill's late fee that is still unpaid (payments settle principal first)."""
    late_fee_paid = max(bill.paid_fen - bill.amount_fen, 0)
    return max(bill.late_fee_fen - late_fee_paid, 0)


def refresh_late_fee_totals(bill_ids) -> None:
    """Set bills.late_fee_fen = sum(accruals) - sum(waivers) for the given bills (one UPDATE)."""
    bill_ids = sorted(set(bill_ids))
    if not bill_ids:
        return
    bills = Bill.__table__
    accrued = sa.select(sa.func.coalesce(sa.func.sum(LateFeeAccrual.amount_fen), 0)).where(
        LateFeeAccrual.bill_id == bills.c.id).scalar_subquery()
    waived = sa.select(sa.func.coalesce(sa.func.sum(LateFeeWaiver.amount_fen), 0)).where(
        LateFeeWaiver.bill_id == bills.c.id).scalar_subquery()
    db.session.execute(
        sa.update(bills).where(bills.c.id.in_(bill_ids)).values(late_fee_fen=accrued - waived, updated_dt=now_utc()),
        execution_options={"synchronize_session": False},
    )


def waive_late_fee(bill_id: int, amount_fen: int, reason: str, user=None) -> LateFeeWaiver:
    """Waive (part of) a bill's unpaid late fee with a reason; audited; may settle the bill."""
    from app.services.payments import refresh_bill_status

    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise TypeError("amount_fen must be an int")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("请填写减免原因")
    if len(reason) > 300:
        raise ValidationFailed("减免原因最多 300 字")
    bill = db.session.scalar(sa.select(Bill).where(Bill.id == bill_id).with_for_update(of=Bill)
                           .execution_options(populate_existing=True))
    if bill is None:
        raise NotFound("账单不存在")
    if bill.status in (BillStatus.void, BillStatus.draft):
        raise ValidationFailed("作废或草稿账单不能减免滞纳金")
    if amount_fen <= 0:
        raise ValidationFailed("减免金额必须大于 0")
    available = waivable_fen(bill)
    if amount_fen > available:
        raise ValidationFailed(f"减免金额 {format_yuan(amount_fen)} 超过未付滞纳金 {format_yuan(available)}")
    before = {"late_fee_fen": bill.late_fee_fen, "status": bill.status.value}
    waiver = LateFeeWaiver(market_id=bill.market_id, bill_id=bill.id, amount_fen=amount_fen, reason=reason,
                           created_by_id=getattr(user, "id", None))
    waiver._audit_reason = reason
    db.session.add(waiver)
    db.session.flush()
    refresh_late_fee_totals([bill.id])
    db.session.refresh(bill)
    refresh_bill_status(bill)
    audit.record_change(
        db.session, bill, before,
        {"late_fee_fen": bill.late_fee_fen, "status": bill.status.value, "waived_fen": amount_fen},
        reason=f"减免滞纳金 {format_yuan(amount_fen)}：{reason}",
    )
    db.session.flush()
    return waiver


__all__ = [
    "AccrualPreview",
    "AccrualResult",
    "accrue_late_fees",
    "applicable_rule",
    "create_rule",
    "last_accrued_day",
    "parse_rate",
    "preview_late_fees",
    "refresh_late_fee_totals",
    "validate_rule",
    "waivable_fen",
    "waive_late_fee",
]
