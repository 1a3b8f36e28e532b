"""Corrections to posted bills: adjustment bills (调整账单) and voids (作废).

A posted bill is never silently changed. A correction is a new bill of kind "adjustment"
pointing at the bill it corrects, with positive or negative lines; voiding needs a reason,
is written to the audit log, and is refused once money has been received (refund first).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, BillLine, Charge, FeeItem, FeeTier, Lease, LeaseFee, Meter, lease_units
from app.models.enums import BillKind, BillStatus, ChargeStatus, LeaseStatus, PricingMode
from app.models.readings import MeterReading
from app.services import audit
from app.services.billing import allocate_bill_number, due_date_for, lock_market, tiered_amount_fen
from app.services.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from app.services.scope import can_see_zone
from app.utils.dates import now_utc, period_end, period_str, today_local
from app.utils.money import format_yuan


@dataclass
class AdjustmentLine:
    """One line of an adjustment bill; amount_fen may be negative (a credit)."""

    description: str
    amount_fen: int
    quantity: Decimal = Decimal(1)
    unit_label: str | None = None
    rate_fen: Decimal | None = None
    fee_item_id: int | None = None
    unit_id: int | None = None
    meter_id: int | None = None
    reading_id: int | None = None


def get_bill(bill_id: int, user=None) -> Bill:
    """A bill the user may see (NotFound otherwise, so other zones' bills do not leak)."""
    bill = db.session.get(Bill, bill_id)
    if bill is None or (user is not None and not can_see_zone(bill.zone_id, user)):
        raise NotFound("账单不存在")
    return bill


def _reason(reason: str | None, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed(f"{what}必须填写原因")
    if len(text) > 300:
        raise ValidationFailed("原因最多 300 字")
    return text


def create_adjustment_bill(bill_id: int, lines: list[AdjustmentLine], reason: str, issue_date: date | None = None,
                           user=None) -> Bill:
    """Issue an adjustment bill correcting a posted bill with positive or negative lines."""
    reason = _reason(reason, "调整")
    original = get_bill(bill_id, user)
    if original.status in (BillStatus.draft, BillStatus.void):
        raise Conflict("只能调整已出账且未作废的账单")
    if not lines:
        raise ValidationFailed("调整账单至少需要一条明细")
    for line in lines:
        if not (line.description or "").strip():
            raise ValidationFailed("每条调整明细都要填写说明")
        if isinstance(line.amount_fen, bool) or not isinstance(line.amount_fen, int) or line.amount_fen == 0:
            raise ValidationFailed("调整金额必须是非零的整数分")
    market = original.market
    lock_market(market.id)
    issue = issue_date or today_local()
    amount = sum(line.amount_fen for line in lines)
    bill = Bill(
        market_id=market.id,
        number=allocate_bill_number(market, original.period),
        kind=BillKind.adjustment,
        status=BillStatus.issued,
        merchant_id=original.merchant_id,
        lease_id=original.lease_id,
        zone_id=original.zone_id,
        period=original.period,
        issue_date=issue,
        due_date=due_date_for(market, issue),
        amount_fen=amount,
        paid_fen=0,
        late_fee_fen=0,
        adjusts_bill_id=original.id,
        note=f"调整 {original.number}：{reason}"[:300],
    )
    bill._audit_reason = reason
    for line in lines:
        bill.lines.append(BillLine(
            market_id=market.id, description=line.description.strip()[:200], quantity=line.quantity,
            unit_label=line.unit_label, rate_fen=line.rate_fen, amount_fen=line.amount_fen,
            fee_item_id=line.fee_item_id, unit_id=line.unit_id, meter_id=line.meter_id, reading_id=line.reading_id,
        ))
    db.session.add(bill)
    db.session.flush()
    audit.record_change(
        db.session, original, {}, {"adjusted_by": bill.number, "adjustment_fen": amount}, reason
    )
    db.session.flush()
    return bill


def is_voidable(bill: Bill) -> bool:
    """Whether a bill may be voided: not void yet and no money received on it."""
    if bill.status == BillStatus.void or bill.paid_fen > 0 or bill.status == BillStatus.partially_paid:
        return False
    return not (bill.status == BillStatus.paid and bill.amount_fen > 0)


def void_bill(bill_id: int, reason: str, user=None) -> Bill:
    """Void a bill with a reason (audited); refused once money was received. Its readings and charges are freed."""
    reason = _reason(reason, "作废")
    bill = get_bill(bill_id, user)
    if bill.status == BillStatus.void:
        raise Conflict("账单已作废")
    if not is_voidable(bill):
        raise Conflict("已收款的账单不能作废，请先退款")
    before = {"status": bill.status.value, "void_reason": bill.void_reason}
    bill.status = BillStatus.void
    bill.voided_dt = now_utc()
    bill.void_reason = reason
    bill._audit_reason = reason
    db.session.flush()
    audit.record_change(db.session, bill, before, {"status": BillStatus.void.value, "void_reason": reason}, reason)
    freed_readings = db.session.execute(
        sa.update(MeterReading).where(MeterReading.bill_id == bill.id)
        .values(bill_id=None, billed_dt=None, updated_dt=now_utc())
    ).rowcount
    freed_charges = db.session.execute(
        sa.update(Charge).where(Charge.bill_id == bill.id, Charge.status == ChargeStatus.billed)
        .values(status=ChargeStatus.pending, bill_id=None, updated_dt=now_utc())
    ).rowcount
    if freed_readings or freed_charges:
        audit.record_bulk(
            db.session, bill.market_id, "meter_readings",
            f"作废 {bill.number}：释放 {freed_readings} 条抄表记录、{freed_charges} 笔一次性费用，可重新出账",
            after={"bill_id": bill.id, "readings": freed_readings, "charges": freed_charges}, reason=reason,
        )
    db.session.flush()
    return bill


# --------------------------------------------------------------------------------------------
# A corrected (or late) meter reading after billing
# --------------------------------------------------------------------------------------------


def _lease_for_meter(meter: Meter, period: date) -> Lease | None:
    """The lease that owns the meter's unit in the period (the newest lease covering it)."""
    return db.session.scalar(
        sa.select(Lease)
        .join(lease_units, lease_units.c.lease_id == Lease.id)
        .where(lease_units.c.unit_id == meter.unit_id, Lease.status != LeaseStatus.draft,
               Lease.start_date <= period_end(period), Lease.end_date >= period)
        .order_by(Lease.start_date.desc(), Lease.id.desc())
        .limit(1)
    )


def _metered_price(lease: Lease, meter: Meter, period: date):
    """(fee item, tiers, flat rate) that price the meter's consumption on this lease in the period."""
    rows = db.session.execute(
        sa.select(LeaseFee, FeeItem)
        .join(FeeItem, FeeItem.id == LeaseFee.fee_item_id)
        .where(LeaseFee.lease_id == lease.id, LeaseFee.effective_from <= period_end(period),
               FeeItem.pricing_mode == PricingMode.metered, FeeItem.meter_type == meter.meter_type,
               FeeItem.is_active.is_(True))
        .order_by(LeaseFee.effective_from.desc())
        .limit(1)
    ).first()
    if rows is None:
        raise ValidationFailed("该租约没有与此表对应的计量收费项目")
    lease_fee, item = rows
    tiers = [
        (t.from_qty, t.to_qty, t.rate_fen)
        for t in db.session.scalars(sa.select(FeeTier).where(FeeTier.fee_item_id == item.id).order_by(FeeTier.from_qty))
    ]
    flat = lease_fee.rate_fen if lease_fee.rate_fen is not None else item.default_rate_fen
    return item, tiers, flat


def adjust_for_reading(reading_id: int, reason: str, issue_date: date | None = None, user=None) -> Bill:
    """Bill a corrected or late reading of a billed period as an adjustment bill (reverse old, charge new)."""
    reason = _reason(reason, "调整")
    reading = db.session.get(MeterReading, reading_id)
    if reading is None or (user is not None and not can_see_zone(reading.zone_id, user)):
        raise NotFound("抄表记录不存在")
    meter = reading.meter
    if meter.is_public or meter.unit_id is None:
        raise ValidationFailed("公摊表的更正请手工开调整账单")
    billed = db.session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(BillLine.amount_fen), 0),
                  sa.func.coalesce(sa.func.sum(BillLine.quantity), 0))
        .join(Bill, Bill.id == BillLine.bill_id)
        .where(BillLine.reading_id == reading.id, Bill.status != BillStatus.void)
    ).one()
    billed_fen, billed_qty = int(billed[0]), Decimal(str(billed[1]))
    target = db.session.get(Bill, reading.bill_id) if reading.bill_id else None
    if target is not None and target.status == BillStatus.void:
        target = None
    if target is not None and target.kind == BillKind.adjustment and target.adjusts_bill_id:
        target = db.session.get(Bill, target.adjusts_bill_id)
    lease = target.lease if target is not None and target.lease is not None else _lease_for_meter(meter, reading.period)
    if lease is None:
        raise ValidationFailed("找不到本期使用该表的租约")
    if target is None:
        target = db.session.scalar(
            sa.select(Bill).where(Bill.lease_id == lease.id, Bill.period == reading.period,
                                  Bill.kind == BillKind.regular, Bill.status != BillStatus.void)
        )
        if target is None:
            raise ValidationFailed(f"租约 {lease.code} 的 {period_str(reading.period)} 账单尚未出账，请直接运行出账")
    item, tiers, flat = _metered_price(lease, meter, reading.period)
    new_fen = tiered_amount_fen(Decimal(reading.consumption), tiers, flat)
    new_qty = Decimal(reading.consumption)
    if new_fen == billed_fen and new_qty == billed_qty:
        raise Conflict("读数对应金额与已出账金额一致，无需调整")
    lines = []
    if billed_fen or billed_qty:
        lines.append(AdjustmentLine(
            description=f"冲销 {item.name} {meter.number} 原用量 {billed_qty.normalize():f}{meter.unit_label}",
            amount_fen=-billed_fen, quantity=-billed_qty, unit_label=meter.unit_label, fee_item_id=item.id,
            unit_id=meter.unit_id, meter_id=meter.id, reading_id=reading.id,
        ))
    lines.append(AdjustmentLine(
        description=(f"更正 {item.name} {meter.number} 上次 {Decimal(reading.previous_reading).normalize():f} "
                     f"本次 {Decimal(reading.reading).normalize():f} 用量 {new_qty.normalize():f}{meter.unit_label}"),
        amount_fen=new_fen, quantity=new_qty, unit_label=meter.unit_label,
        rate_fen=None if tiers else flat, fee_item_id=item.id, unit_id=meter.unit_id, meter_id=meter.id,
        reading_id=reading.id,
    ))
    lines = [line for line in lines if line.amount_fen != 0] or lines[-1:]
    if all(line.amount_fen == 0 for line in lines):
        raise Conflict("读数对应金额与已出账金额一致，无需调整")
    bill = create_adjustment_bill(target.id, lines, f"{reason}（{format_yuan(billed_fen)} → {format_yuan(new_fen)}）",
                                  issue_date=issue_date, user=user)
    reading.bill_id = bill.id
    reading.billed_dt = now_utc()
    db.session.flush()
    return bill


__all__ = ["AdjustmentLine", "adjust_for_reading", "create_adjustment_bill", "get_bill", "void_bill", "Forbidden"]
