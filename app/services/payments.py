"""Payments (收款): recording money against bills, allocation, receipt numbers, refund bookkeeping.

Used by Finance for cash and bank transfers (back office) and by the WeChat Pay notification
handler. docs/payments.md describes the rules:

* record_payment is idempotent on transaction_id: the same transaction recorded twice (a repeated
  notification, a double-clicked form) is one payment. Concurrent duplicates are serialised by
  locking the bills (SELECT ... FOR UPDATE) and, as a last resort, by the unique constraint.
* The amount goes to the bills oldest due first; within a bill principal first, then late fee
  (Bill.principal_outstanding_fen). Nothing is ever over-allocated: an offline payment larger
  than what the bills owe is refused; a WeChat payment (the money is already taken) keeps the
  surplus unallocated on the payment, to be refunded.
* A bill's paid_fen = its allocations of succeeded payments - its succeeded refund allocations.
"""
from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Bill, Merchant
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, PaymentMethod, PaymentStatus, RefundStatus
from app.models.payments import Payment, PaymentAllocation, Refund, RefundAllocation
from app.services.exceptions import Conflict, NotFound, ValidationFailed
from app.utils.dates import now_utc, to_local
from app.utils.money import format_yuan

OFFLINE_METHODS = (PaymentMethod.cash, PaymentMethod.bank_transfer)
CASH_PREFIX = "CASH"
_REFERENCE_RE = re.compile(r"^[0-9A-Za-z_\-|*@.:/]{1,64}$")


def _check_fen(amount_fen, what="金额") -> int:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise TypeError(f"{what} must be an int number of fen")
    return amount_fen


# --------------------------------------------------------------------------- queries


def outstanding_total(bill_ids) -> int:
    """What the given open bills still owe in total (principal + late fee - paid), in fen."""
    ids = sorted({int(i) for i in bill_ids})
    if not ids:
        return 0
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Bill.amount_fen + Bill.late_fee_fen - Bill.paid_fen), 0))
        .where(Bill.id.in_(ids), Bill.status.in_(OPEN_BILL_STATUSES))
    )
    return max(int(total), 0)


def open_bills(merchant_id: int) -> list[Bill]:
    """A merchant's bills that still expect money, oldest due first."""
    return list(db.session.scalars(
        sa.select(Bill)
        .where(Bill.merchant_id == merchant_id, Bill.status.in_(OPEN_BILL_STATUSES))
        .order_by(Bill.due_date, Bill.id)
    ))


def payment_by_transaction(transaction_id: str) -> Payment | None:
    """The payment recorded with this transaction id (WeChat's, the bank's or a cash reference)."""
    return db.session.scalar(sa.select(Payment).where(Payment.transaction_id == transaction_id))


def next_cash_reference(market_id: int, when: datetime | None = None) -> str:
    """The next free cash reference of the day: CASH-<yyyymmdd>-<seq> (Shanghai date)."""
    day = to_local(when or now_utc()).strftime("%Y%m%d")
    prefix = f"{CASH_PREFIX}-{day}-"
    used = db.session.scalars(
        sa.select(Payment.transaction_id).where(Payment.transaction_id.like(f"{prefix}%"))
    ).all()
    numbers = [int(ref[len(prefix):]) for ref in used if ref[len(prefix):].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


# --------------------------------------------------------------------------- bill status


def _bill_receipt_no(bill: Bill, when: datetime) -> str:
    """<market code>-R<yyyymmdd>-<bill id>[-<n>]: n counts receipts voided by refunds before."""
    reissues = db.session.scalar(
        sa.select(sa.func.count(RefundAllocation.id))
        .join(Refund, Refund.id == RefundAllocation.refund_id)
        .where(RefundAllocation.bill_id == bill.id, Refund.status == RefundStatus.succeeded)
    ) or 0
    number = f"{bill.market.code}-R{to_local(when):%Y%m%d}-{bill.id:06d}"
    return number if not reissues else f"{number}-{reissues + 1}"


def refresh_bill_status(bill: Bill, when: datetime | None = None) -> None:
    """Set an issued bill's status from its amounts: paid (with a receipt number) when nothing is owed."""
    if bill.status in (BillStatus.void, BillStatus.draft):
        return
    if bill.outstanding_fen <= 0:
        if bill.status != BillStatus.paid:
            when = when or now_utc()
            with db.session.no_autoflush:
                number = _bill_receipt_no(bill, when)
            bill.paid_dt, bill.status, bill.receipt_no = when, BillStatus.paid, number
        return
    if bill.status == BillStatus.paid:
        # Owed again (a refund): the receipt is void; a new number is issued when it is settled again.
        bill.receipt_no = None
        bill.paid_dt = None
    bill.status = BillStatus.partially_paid if bill.paid_fen > 0 else BillStatus.issued


# --------------------------------------------------------------------------- payments


def _same_payment_or_conflict(existing: Payment, merchant_id, amount_fen) -> Payment:
    if existing.merchant_id != merchant_id or existing.amount_fen != amount_fen:
        raise Conflict(
            f"交易单号 {existing.transaction_id} 已登记为另一笔收款（{format_yuan(existing.amount_fen)}）",
            code="transaction_id_taken",
        )
    return existing


def plan_allocation(bills, amount_fen: int) -> list[tuple[Bill, int]]:
    """Split an amount over open bills, oldest due first, each up to what it owes (never more)."""
    plan = []
    left = amount_fen
    for bill in sorted(bills, key=lambda b: (b.due_date, b.id)):
        if left <= 0:
            break
        if bill.status not in OPEN_BILL_STATUSES:
            continue
        take = min(left, max(bill.outstanding_fen, 0))
        if take > 0:
            plan.append((bill, take))
            left -= take
    return plan


def record_payment(market_id, merchant_id, bill_ids, amount_fen, method, transaction_id, paid_dt,
                   out_trade_no=None, payer_openid=None, note=None, recorded_by=None) -> Payment:
    """Record money received for a merchant's bills, once per transaction id, allocated oldest due first."""
    _check_fen(amount_fen)
    if amount_fen <= 0:
        raise ValidationFailed("收款金额必须大于 0")
    try:
        method = PaymentMethod(method)
    except ValueError:
        raise ValidationFailed(f"未知的支付方式：{method}") from None
    transaction_id = (transaction_id or "").strip()
    if not transaction_id:
        raise ValidationFailed("请填写交易单号 / 参考号")
    if not _REFERENCE_RE.match(transaction_id):
        raise ValidationFailed("交易单号只能包含字母、数字和 - _ | * @ . : /，最多 64 位")
    if not isinstance(paid_dt, datetime) or paid_dt.tzinfo is None:
        raise ValidationFailed("收款时间无效")
    if paid_dt > now_utc() and method in OFFLINE_METHODS:
        raise ValidationFailed("收款时间不能晚于现在")
    ids = sorted({int(i) for i in bill_ids or ()})
    if not ids:
        raise ValidationFailed("请选择要收款的账单")

    existing = payment_by_transaction(transaction_id)
    if existing is not None:
        return _same_payment_or_conflict(existing, merchant_id, amount_fen)

    # Lock the bills (in id order, so concurrent payments never deadlock), then look again:
    # a concurrent call for the same transaction has committed by the time we get the locks.
    bills = list(db.session.scalars(sa.select(Bill).where(Bill.id.in_(ids)).order_by(Bill.id).with_for_update(of=Bill)
                                      .execution_options(populate_existing=True)))
    existing = payment_by_transaction(transaction_id)
    if existing is not None:
        return _same_payment_or_conflict(existing, merchant_id, amount_fen)

    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None or merchant.market_id != market_id:
        raise NotFound("商户不存在")
    if len(bills) != len(ids):
        raise NotFound("账单不存在")
    for bill in bills:
        if bill.market_id != market_id or bill.merchant_id != merchant_id:
            raise ValidationFailed(f"账单 {bill.number} 不属于该商户")
    if method in OFFLINE_METHODS:
        closed = [b.number for b in bills if b.status not in OPEN_BILL_STATUSES]
        if closed:
            raise ValidationFailed(f"账单 {'、'.join(closed)} 不是待缴状态")
        owed = sum(max(b.outstanding_fen, 0) for b in bills)
        if amount_fen > owed:
            raise ValidationFailed(
                f"收款金额 {format_yuan(amount_fen)} 超过所选账单未付合计 {format_yuan(owed)}",
                code="over_payment",
            )

    pending = None
    if out_trade_no:
        pending = db.session.scalar(sa.select(Payment).where(Payment.out_trade_no == out_trade_no)
                                     .with_for_update(of=Payment).execution_options(populate_existing=True))
        if pending is not None and pending.status == PaymentStatus.succeeded:
            raise Conflict(f"订单 {out_trade_no} 已由交易 {pending.transaction_id} 支付", code="order_already_paid")

    plan = plan_allocation(bills, amount_fen)
    try:
        with db.session.begin_nested():
            payment = pending or Payment(market_id=market_id, out_trade_no=out_trade_no)
            payment.merchant_id = merchant_id
            payment.zone_id = bills[0].zone_id if bills else merchant.zone_id
            payment.method = method
            payment.status = PaymentStatus.succeeded
            payment.amount_fen = amount_fen
            payment.transaction_id = transaction_id
            payment.payer_openid = payer_openid or (pending.payer_openid if pending else None)
            payment.paid_dt = paid_dt
            payment.note = (note or "").strip()[:300] or (pending.note if pending else None)
            payment.recorded_by_id = getattr(recorded_by, "id", recorded_by)
            db.session.add(payment)
            db.session.flush()
            payment.receipt_no = f"{merchant.market.code}-P{to_local(paid_dt):%Y%m%d}-{payment.id:06d}"
            for bill, take in plan:
                db.session.add(PaymentAllocation(market_id=market_id, payment=payment, bill_id=bill.id,
                                                 amount_fen=take))
                bill.paid_fen += take
                refresh_bill_status(bill, paid_dt)
            db.session.flush()
    except IntegrityError:
        # Lost a race on transaction_id (or out_trade_no) that the bill locks did not serialise.
        winner = payment_by_transaction(transaction_id)
        if winner is None:
            raise
        return _same_payment_or_conflict(winner, merchant_id, amount_fen)
    return payment


def create_pending_payment(market_id, merchant_id, bill_ids, amount_fen, out_trade_no, payer_openid=None,
                           note=None) -> Payment:
    """A WeChat order waiting for its notification (status pending, allocated when it succeeds)."""
    _check_fen(amount_fen)
    if amount_fen <= 0:
        raise ValidationFailed("支付金额必须大于 0")
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None or merchant.market_id != market_id:
        raise NotFound("商户不存在")
    ids = sorted({int(i) for i in bill_ids or ()})
    bills = list(db.session.scalars(sa.select(Bill).where(Bill.id.in_(ids)))) if ids else []
    if not bills or len(bills) != len(ids) or any(b.merchant_id != merchant_id for b in bills):
        raise ValidationFailed("账单不属于该商户")
    payment = Payment(market_id=market_id, merchant_id=merchant_id, zone_id=bills[0].zone_id,
                      method=PaymentMethod.wechat, status=PaymentStatus.pending, amount_fen=amount_fen,
                      out_trade_no=out_trade_no, payer_openid=payer_openid, note=note)
    db.session.add(payment)
    db.session.flush()
    return payment


# --------------------------------------------------------------------------- refunds


def refundable_fen(payment: Payment) -> int:
    """What may still be refunded: the amount minus refunds succeeded or in progress."""
    return refundable_amounts([payment])[payment.id]


def refundable_amounts(payments) -> dict[int, int]:
    """refundable_fen of several payments in one query: {payment id: fen}."""
    ids = [p.id for p in payments if p.status == PaymentStatus.succeeded]
    reserved = dict(db.session.execute(
        sa.select(Refund.payment_id, sa.func.sum(Refund.amount_fen)).where(
            Refund.payment_id.in_(ids),
            Refund.status.in_((RefundStatus.processing, RefundStatus.succeeded)),
        ).group_by(Refund.payment_id)
    ).all()) if ids else {}
    return {p.id: (max(p.amount_fen - int(reserved.get(p.id) or 0), 0) if p.status == PaymentStatus.succeeded else 0)
            for p in payments}


def record_refund(payment_id, amount_fen, reason, out_refund_no=None, status=RefundStatus.processing,
                  refund_id=None, succeeded_dt=None, created_by=None) -> Refund:
    """Book a refund of (part of) a payment; never more than paid minus refunded; idempotent on out_refund_no."""
    _check_fen(amount_fen)
    status = RefundStatus(status)
    payment = db.session.scalar(sa.select(Payment).where(Payment.id == payment_id).with_for_update(of=Payment)
                                 .execution_options(populate_existing=True))
    if payment is None:
        raise NotFound("收款记录不存在")
    if out_refund_no:
        existing = db.session.scalar(sa.select(Refund).where(Refund.out_refund_no == out_refund_no))
        if existing is not None:
            if existing.payment_id != payment.id or existing.amount_fen != amount_fen:
                raise Conflict(f"退款单号 {out_refund_no} 已用于另一笔退款", code="out_refund_no_taken")
            if status != RefundStatus.processing and existing.status == RefundStatus.processing:
                settle_refund(out_refund_no, status, refund_id=refund_id, succeeded_dt=succeeded_dt)
            return existing
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("请填写退款原因")
    if payment.status != PaymentStatus.succeeded:
        raise ValidationFailed("只有成功的收款可以退款")
    if amount_fen <= 0:
        raise ValidationFailed("退款金额必须大于 0")
    available = refundable_fen(payment)
    if amount_fen > available:
        raise ValidationFailed(
            f"退款金额 {format_yuan(amount_fen)} 超过可退金额 {format_yuan(available)}", code="over_refund"
        )
    if not out_refund_no:
        count = db.session.scalar(sa.select(sa.func.count(Refund.id)).where(Refund.payment_id == payment.id))
        out_refund_no = f"RF{payment.id:06d}-{count + 1}"
    refund = Refund(market_id=payment.market_id, payment=payment, out_refund_no=out_refund_no, amount_fen=amount_fen,
                    status=RefundStatus.processing, reason=reason[:200], refund_id=refund_id,
                    created_by_id=getattr(created_by, "id", created_by))
    db.session.add(refund)
    db.session.flush()
    if status != RefundStatus.processing:
        settle_refund(out_refund_no, status, refund_id=refund_id, succeeded_dt=succeeded_dt)
    return refund


def refund_offline_payment(payment_id, amount_fen, reason, out_refund_no, reference=None, refunded_dt=None,
                           created_by=None) -> Refund:
    """Book money handed back for a cash or bank-transfer payment: succeeded at once, the bills owe it again.

    out_refund_no comes from the form (one per form), so submitting it twice books one refund; a bank
    transfer back needs its bank serial number as the reference."""
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("收款记录不存在")
    if payment.method not in OFFLINE_METHODS:
        raise ValidationFailed("微信支付的收款请在“微信支付 › 退款”中退款", code="not_offline")
    reference = (reference or "").strip() or None
    if payment.method == PaymentMethod.bank_transfer and not reference:
        raise ValidationFailed("银行转账退款请填写退款的银行流水号")
    out_refund_no = (out_refund_no or "").strip()
    if not out_refund_no or len(out_refund_no) > 64:
        raise ValidationFailed("退款单号无效，请重新打开退款页面")
    return record_refund(payment.id, amount_fen, reason, out_refund_no=out_refund_no, status=RefundStatus.succeeded,
                         refund_id=reference[:64] if reference else None, succeeded_dt=refunded_dt or now_utc(),
                         created_by=created_by)


def settle_refund(out_refund_no, status, refund_id=None, succeeded_dt=None) -> Refund:
    """Mark a refund succeeded (take the money back from its bills) or failed; repeating it changes nothing."""
    status = RefundStatus(status)
    if status == RefundStatus.processing:
        raise ValidationFailed("退款结果只能是成功或失败")
    refund = db.session.scalar(sa.select(Refund).where(Refund.out_refund_no == out_refund_no))
    if refund is None:
        raise NotFound(f"退款单 {out_refund_no} 不存在")
    payment = db.session.scalar(sa.select(Payment).where(Payment.id == refund.payment_id).with_for_update(of=Payment)
                                 .execution_options(populate_existing=True))
    db.session.refresh(refund)
    if refund.status == status:
        return refund
    if refund.status != RefundStatus.processing:
        raise Conflict(f"退款单 {out_refund_no} 已是{refund.status.label}", code="refund_settled")
    if refund_id:
        refund.refund_id = refund_id
    if status == RefundStatus.failed:
        refund.status = RefundStatus.failed
        db.session.flush()
        return refund
    when = succeeded_dt or now_utc()
    left = refund.amount_fen - min(refund.amount_fen, max(payment.unallocated_fen, 0))  # the surplus goes first
    taken_back = dict(db.session.execute(
        sa.select(RefundAllocation.bill_id, sa.func.sum(RefundAllocation.amount_fen))
        .join(Refund, Refund.id == RefundAllocation.refund_id)
        .where(Refund.payment_id == payment.id, Refund.status == RefundStatus.succeeded)
        .group_by(RefundAllocation.bill_id)
    ).all())
    allocations = sorted(payment.allocations, key=lambda a: (a.bill.due_date, a.bill_id), reverse=True)
    for allocation in allocations:
        if left <= 0:
            break
        take = min(left, allocation.amount_fen - int(taken_back.get(allocation.bill_id, 0)))
        if take <= 0:
            continue
        bill = db.session.scalar(sa.select(Bill).where(Bill.id == allocation.bill_id).with_for_update(of=Bill)
                                  .execution_options(populate_existing=True))
        db.session.add(RefundAllocation(market_id=refund.market_id, refund=refund, bill_id=bill.id, amount_fen=take))
        bill.paid_fen -= take
        refresh_bill_status(bill, when)
        left -= take
    if left > 0:  # cannot happen while refunds never exceed the payment
        raise Conflict("退款金额超过该笔收款已分配金额", code="over_refund")
    refund.status = RefundStatus.succeeded
    refund.succeeded_dt = when
    payment.refunded_fen += refund.amount_fen
    db.session.flush()
    return refund


__all__ = [
    "create_pending_payment",
    "next_cash_reference",
    "open_bills",
    "outstanding_total",
    "payment_by_transaction",
    "plan_allocation",
    "record_payment",
    "record_refund",
    "refund_offline_payment",
    "refresh_bill_status",
    "refundable_amounts",
    "refundable_fen",
    "settle_refund",
]
