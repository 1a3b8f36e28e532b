"""One-off charges (费用录入): a repair cost or a penalty for a merchant, billed with the next
run or at once on an ad-hoc bill (kind "adhoc", due per the market's rule)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date

import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, BillLine, Charge, FeeItem, Lease, Merchant
from app.models.enums import BillKind, BillStatus, ChargeStatus
from app.services import audit
from app.services.billing import allocate_bill_number, due_date_for, lock_market
from app.services.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from app.services.scope import can_see_zone
from app.utils.dates import today_local

MAX_CHARGE_FEN = 10**10  # 1 亿元: anything larger is a typo


def add_charge(merchant_id: int, amount_fen: int, description: str, *, lease_id: int | None = None,
               fee_item_id: int | None = None, user=None, bill_now: bool = False,
               issue_date: date | None = None) -> Charge:
    """Record a one-off charge for a merchant of the user's zones; with bill_now, bill it at once."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("商户不存在")
    description = (description or "").strip()
    if not description:
        raise ValidationFailed("请填写费用说明")
    if len(description) > 200:
        raise ValidationFailed("费用说明最多 200 字")
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationFailed("金额必须大于零")
    if amount_fen > MAX_CHARGE_FEN:
        raise ValidationFailed("金额过大，请核对")
    lease = None
    if lease_id is not None:
        lease = db.session.get(Lease, lease_id)
        if lease is None or lease.merchant_id != merchant.id:
            raise ValidationFailed("所选租约不属于该商户")
    zone_id = lease.zone_id if lease is not None else merchant.zone_id
    if zone_id is None:
        raise ValidationFailed("该商户没有所属片区，请先在商户资料中设置")
    if user is not None and not can_see_zone(zone_id, user):
        raise Forbidden("无权为其他片区的商户录入费用")
    if fee_item_id is not None:
        item = db.session.get(FeeItem, fee_item_id)
        if item is None or item.market_id != merchant.market_id:
            raise ValidationFailed("收费项目不存在")
    charge = Charge(
        market_id=merchant.market_id, merchant_id=merchant.id, lease_id=lease.id if lease else None,
        zone_id=zone_id, fee_item_id=fee_item_id, description=description, amount_fen=amount_fen,
        status=ChargeStatus.pending, created_by_id=getattr(user, "id", None),
    )
    db.session.add(charge)
    db.session.flush()
    if bill_now:
        bill_charges_now([charge.id], user=user, issue_date=issue_date)
    return charge


def bill_charges_now(charge_ids: list[int], user=None, issue_date: date | None = None) -> list[Bill]:
    """Bill pending charges at once: one ad-hoc bill per merchant (and lease), due per the market rule."""
    if not charge_ids:
        raise ValidationFailed("请选择要出账的费用")
    first = db.session.get(Charge, charge_ids[0])
    if first is None:
        raise NotFound("费用不存在")
    lock_market(first.market_id)
    charges = db.session.scalars(
        sa.select(Charge).where(Charge.id.in_(charge_ids)).order_by(Charge.id)
        .with_for_update(of=Charge).execution_options(populate_existing=True)
    ).all()
    if len(charges) != len(set(charge_ids)):
        raise NotFound("费用不存在")
    for charge in charges:
        if user is not None and not can_see_zone(charge.zone_id, user):
            raise NotFound("费用不存在")
        if charge.status != ChargeStatus.pending:
            raise Conflict(f"费用「{charge.description}」不是待出账状态")
        if charge.market_id != first.market_id:
            raise ValidationFailed("只能同时为一个市场的费用出账")
    groups = defaultdict(list)
    for charge in charges:
        groups[(charge.merchant_id, charge.zone_id, charge.lease_id)].append(charge)
    market = first.market
    issue = issue_date or today_local()
    period = issue.replace(day=1)
    bills = []
    for (merchant_id, zone_id, lease_id), group in groups.items():
        bill = Bill(
            market_id=market.id, number=allocate_bill_number(market, period), kind=BillKind.adhoc,
            status=BillStatus.issued, merchant_id=merchant_id, lease_id=lease_id, zone_id=zone_id,
            period=period, issue_date=issue, due_date=due_date_for(market, issue),
            amount_fen=sum(c.amount_fen for c in group), paid_fen=0, late_fee_fen=0,
        )
        for charge in group:
            bill.lines.append(BillLine(
                market_id=market.id, fee_item_id=charge.fee_item_id, charge_id=charge.id,
                description=charge.description, quantity=1, rate_fen=charge.amount_fen, amount_fen=charge.amount_fen,
            ))
        db.session.add(bill)
        db.session.flush()
        for charge in group:
            charge.status = ChargeStatus.billed
            charge.bill_id = bill.id
        bills.append(bill)
    db.session.flush()
    return bills


def cancel_charge(charge_id: int, reason: str, user=None) -> Charge:
    """Cancel a pending charge, with a reason (audited)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("取消费用必须填写原因")
    charge = db.session.get(Charge, charge_id)
    if charge is None or (user is not None and not can_see_zone(charge.zone_id, user)):
        raise NotFound("费用不存在")
    if charge.status != ChargeStatus.pending:
        raise Conflict("只能取消待出账的费用")
    charge.status = ChargeStatus.cancelled
    charge._audit_reason = reason
    db.session.flush()
    audit.record_change(db.session, charge, {"status": "pending"}, {"status": "cancelled"}, reason)
    return charge


__all__ = ["add_charge", "bill_charges_now", "cancel_charge"]
