"""Payments: allocation oldest due first, idempotency on transaction_id, over-payment, refunds."""
import threading
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog
from app.models.enums import BillStatus, PaymentStatus, RefundStatus
from app.models.payments import Payment, PaymentAllocation, Refund, RefundAllocation
from app.services.exceptions import Conflict, NotFound, ValidationFailed
from app.services.latefees import accrue_late_fees, create_rule
from app.services.payments import (
    create_pending_payment,
    next_cash_reference,
    outstanding_total,
    record_payment,
    record_refund,
    refundable_fen,
    settle_refund,
)
from tests.factories import make_bill

PAID = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)  # 2026-11-20 10:30 in Shanghai


def reload(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


@pytest.fixture
def bills(market):
    """Three open bills of the first merchant: due 10-15, 11-15 and 12-15."""
    lease = market.leases[0]
    out = [
        make_bill(lease, amount_fen=30000, due_date=date(2026, 11, 15), period=date(2026, 10, 1)),
        make_bill(lease, amount_fen=20000, due_date=date(2026, 10, 15), period=date(2026, 9, 1)),
        make_bill(lease, amount_fen=50000, due_date=date(2026, 12, 15), period=date(2026, 11, 1)),
    ]
    db.session.commit()
    return out


def pay(market, bills, amount, ref="BANK-20261120-01", method="bank_transfer", **kw):
    payment = record_payment(market.market.id, bills[0].merchant_id, [b.id for b in bills], amount, method, ref,
                             kw.pop("paid_dt", PAID), **kw)
    db.session.commit()
    return payment


def test_allocates_oldest_due_first_and_marks_paid_and_partially_paid(market, bills):
    sep, octo, nov = bills[1], bills[0], bills[2]
    assert outstanding_total([b.id for b in bills]) == 100000
    payment = pay(market, bills, 60000)
    assert {a.bill_id: a.amount_fen for a in reload(payment).allocations} == {sep.id: 20000, octo.id: 30000,
                                                                             nov.id: 10000}
    sep, octo, nov = reload(sep), reload(octo), reload(nov)
    assert (sep.status, sep.paid_fen) == (BillStatus.paid, 20000)
    assert (octo.status, octo.paid_fen) == (BillStatus.paid, 30000)
    assert (nov.status, nov.paid_fen) == (BillStatus.partially_paid, 10000)
    assert sep.receipt_no == f"JJ-R20261120-{sep.id:06d}" and sep.paid_dt == PAID
    assert nov.receipt_no is None
    payment = reload(payment)
    assert payment.status == PaymentStatus.succeeded and payment.receipt_no == f"JJ-P20261120-{payment.id:06d}"
    assert payment.zone_id == market.zone_a.id
    assert outstanding_total([b.id for b in bills]) == 40000


def test_principal_first_then_late_fee(market):
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=0)
    bill = make_bill(market.leases[0], amount_fen=100000, due_date=date(2026, 11, 15))
    db.session.commit()
    accrue_late_fees(market.market.id, date(2026, 11, 20))
    db.session.commit()
    assert reload(bill).late_fee_fen == 250
    pay(market, [bill], 100100)
    bill = reload(bill)
    assert bill.principal_outstanding_fen == 0 and bill.outstanding_fen == 150
    assert bill.status == BillStatus.partially_paid
    pay(market, [bill], 150, ref="CASH-20261120-0001", method="cash")
    assert reload(bill).status == BillStatus.paid


def test_idempotent_on_transaction_id(market, bills):
    first = pay(market, bills[:1], 10000, ref="4200000001")
    again = pay(market, bills[:1], 10000, ref="4200000001")
    assert again.id == first.id
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert reload(bills[0]).paid_fen == 10000
    with pytest.raises(Conflict):
        pay(market, bills[:1], 9999, ref="4200000001")
    db.session.rollback()


def test_offline_over_payment_is_refused(market, bills):
    with pytest.raises(ValidationFailed) as err:
        pay(market, bills[:2], 50001)
    assert err.value.code == "over_payment"
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    pay(market, bills[:2], 50000)
    assert {reload(b).status for b in bills[:2]} == {BillStatus.paid}


def test_wechat_surplus_stays_unallocated(market, bills):
    pay(market, bills[:1], 30000, ref="CASH-1", method="cash")  # paid at the counter meanwhile
    payment = pay(market, bills[:1], 30000, ref="4200000002", method="wechat", out_trade_no="MS202611200001")
    payment = reload(payment)
    assert payment.allocations == [] and payment.unallocated_fen == 30000
    assert reload(bills[0]).paid_fen == 30000
    refund = record_refund(payment.id, 30000, "重复支付退回", status=RefundStatus.succeeded)
    db.session.commit()
    assert reload(payment).unallocated_fen == 0 and reload(bills[0]).paid_fen == 30000
    assert reload(refund).allocations == []


def test_bills_must_be_the_merchants_and_open(market, bills):
    other = make_bill(market.leases[2], amount_fen=1000)
    db.session.commit()
    with pytest.raises(ValidationFailed):
        record_payment(market.market.id, bills[0].merchant_id, [bills[0].id, other.id], 1000, "cash", "C-1", PAID)
    with pytest.raises(NotFound):
        record_payment(market.market.id, bills[0].merchant_id, [999999], 1000, "cash", "C-2", PAID)
    pay(market, bills[1:2], 20000)
    with pytest.raises(ValidationFailed):
        record_payment(market.market.id, bills[0].merchant_id, [bills[1].id], 100, "cash", "C-3", PAID)
    with pytest.raises(ValidationFailed):
        record_payment(market.market.id, bills[0].merchant_id, [bills[0].id], 0, "cash", "C-4", PAID)
    with pytest.raises(ValidationFailed):
        record_payment(market.market.id, bills[0].merchant_id, [bills[0].id], 100, "cash", "", PAID)
    with pytest.raises(ValidationFailed):
        record_payment(market.market.id, bills[0].merchant_id, [bills[0].id], 100, "cash", "C-5",
                       datetime(2099, 1, 1, tzinfo=timezone.utc))


def test_payment_and_bills_are_audited(market, bills, staff):
    payment = pay(market, bills[:1], 30000, recorded_by=staff["finance"])
    entry = db.session.scalars(sa.select(AuditLog).where(AuditLog.table_name == "payments",
                                                         AuditLog.action == "insert")).one()
    assert entry.after["amount_fen"] == 30000 and entry.after["transaction_id"] == "BANK-20261120-01"
    bill_entry = db.session.scalars(sa.select(AuditLog).where(
        AuditLog.table_name == "bills", AuditLog.row_id == str(bills[0].id), AuditLog.action == "update")).first()
    assert bill_entry.after["paid_fen"] == 30000 and bill_entry.after["status"] == "paid"
    assert reload(payment).recorded_by_id == staff["finance"].id


def test_cash_references_count_up_per_day(market, bills):
    when = datetime(2026, 11, 20, 16, 30, tzinfo=timezone.utc)  # already 11-21 in Shanghai
    assert next_cash_reference(market.market.id, when) == "CASH-20261121-0001"
    pay(market, bills[:1], 100, ref="CASH-20261121-0001", method="cash", paid_dt=when)
    assert next_cash_reference(market.market.id, when) == "CASH-20261121-0002"


def test_pending_wechat_order_is_completed_not_duplicated(market, bills):
    pending = create_pending_payment(market.market.id, bills[0].merchant_id, [bills[0].id], 30000, "MS202611200009")
    db.session.commit()
    payment = pay(market, bills[:1], 30000, ref="4200000009", method="wechat", out_trade_no="MS202611200009",
                  payer_openid="o-abc")
    assert payment.id == pending.id
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert reload(payment).status == PaymentStatus.succeeded and reload(bills[0]).status == BillStatus.paid


def test_refund_bookkeeping_never_exceeds_paid(market, bills):
    payment = pay(market, bills[:2], 50000)  # sep 20,000 + oct 30,000, both paid
    sep, octo = reload(bills[1]), reload(bills[0])
    old_receipt = octo.receipt_no
    assert refundable_fen(reload(payment)) == 50000
    first = record_refund(payment.id, 10000, "多收管理费")
    db.session.commit()
    assert reload(first).status == RefundStatus.processing
    assert refundable_fen(reload(payment)) == 40000  # reserved while processing
    with pytest.raises(ValidationFailed):
        record_refund(payment.id, 40001, "超额")
    settle_refund(first.out_refund_no, RefundStatus.succeeded, refund_id="50300001")
    db.session.commit()
    settle_refund(first.out_refund_no, RefundStatus.succeeded)  # repeated notification: nothing changes
    db.session.commit()
    payment, sep, octo = reload(payment), reload(sep), reload(octo)
    assert payment.refunded_fen == 10000
    # Taken back from the bill due last (October), which is owed again and loses its receipt.
    assert (octo.paid_fen, octo.status, octo.receipt_no) == (20000, BillStatus.partially_paid, None)
    assert (sep.paid_fen, sep.status) == (20000, BillStatus.paid)
    failed = record_refund(payment.id, 5000, "试退")
    settle_refund(failed.out_refund_no, RefundStatus.failed)
    db.session.commit()
    assert refundable_fen(reload(payment)) == 40000
    with pytest.raises(Conflict):
        settle_refund(failed.out_refund_no, RefundStatus.succeeded)
    db.session.rollback()
    last = record_refund(payment.id, 40000, "全部退回", status=RefundStatus.succeeded)
    db.session.commit()
    assert refundable_fen(reload(payment)) == 0
    assert {(a.bill_id, a.amount_fen) for a in reload(last).allocations} == {(octo.id, 20000), (sep.id, 20000)}
    assert reload(octo).status == BillStatus.issued and reload(sep).status == BillStatus.issued
    with pytest.raises(ValidationFailed):
        record_refund(payment.id, 1, "再退")
    db.session.rollback()
    # Paid again the same day: a new receipt number, the refunded one stays void.
    pay(market, [octo], 30000, ref="BANK-20261120-02")
    assert reload(octo).receipt_no == old_receipt + "-3"
    total_refunded = db.session.scalar(sa.select(sa.func.sum(RefundAllocation.amount_fen)))
    assert total_refunded == 50000


def test_refund_retry_with_the_same_out_refund_no_is_one_refund(market, bills):
    payment = pay(market, bills[:1], 30000)
    a = record_refund(payment.id, 1000, "退差价", out_refund_no="RF-X-1")
    b = record_refund(payment.id, 1000, "退差价", out_refund_no="RF-X-1")
    db.session.commit()
    assert a.id == b.id and db.session.scalar(sa.select(sa.func.count(Refund.id))) == 1
    with pytest.raises(Conflict):
        record_refund(payment.id, 2000, "退差价", out_refund_no="RF-X-1")


def _concurrently(app, calls):
    """Run each call in its own thread, app context and database session, all at once."""
    barrier = threading.Barrier(len(calls))
    results, errors = [], []

    def run(call):
        with app.app_context():
            try:
                barrier.wait()
                payment = call()
                db.session.commit()
                results.append(payment.id)
            except Exception as exc:  # noqa: BLE001  (reported below)
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


def test_concurrent_duplicate_notifications_record_one_payment(app, market, bills):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks or concurrent writers; this runs on PostgreSQL (DATABASE_URL)")
    merchant_id, ids = bills[0].merchant_id, [b.id for b in bills]

    def call():
        return record_payment(market.market.id, merchant_id, ids, 100000, "wechat", "4200000777", PAID,
                              out_trade_no="MS202611200777")

    results, errors = _concurrently(app, [call, call, call])
    assert errors == [] and len(results) == 3 and len(set(results)) == 1
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert db.session.scalar(sa.select(sa.func.count(PaymentAllocation.id))) == 3
    assert sum(reload(b).paid_fen for b in bills) == 100000


def test_concurrent_duplicates_on_different_bills_fall_back_to_the_unique_constraint(app, market, bills):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks or concurrent writers; this runs on PostgreSQL (DATABASE_URL)")
    merchant_id = bills[0].merchant_id

    def call_for(bill):
        return lambda: record_payment(market.market.id, merchant_id, [bill.id], 10000, "bank_transfer",
                                      "BANK-SAME-REF", PAID)

    results, errors = _concurrently(app, [call_for(bills[0]), call_for(bills[1])])
    assert errors == [] and len(set(results)) == 1
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert sum(reload(b).paid_fen for b in bills) == 10000
