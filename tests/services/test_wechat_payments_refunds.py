"""Refunds, reconciliation by query, the trade bill, and concurrent notifications (PostgreSQL)."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, Payment, Refund
from app.models.enums import BillStatus, RefundStatus
from app.models.wechatpay import (
    MismatchKind, NotificationVerdict, PayNotification, PayOrder, PayOrderStatus, TradeBillMismatch,
)
from app.services import wechat_payments
from app.services.exceptions import ValidationFailed
from app.services.payments import record_payment
from app.utils.dates import now_utc, today_local
from tests.wechatpay_support import NOTIFY_PATH, live_server, make_bill, wxpay  # noqa: F401

OPENID = "o-payer-2"


def _paid_order(fake, merchant, *amounts):
    bills = [make_bill(merchant, a) for a in amounts]
    order, _ = wechat_payments.create_pay_order(merchant, OPENID, [b.id for b in bills])
    db.session.commit()
    assert fake.pay(order.out_trade_no)["status_code"] == 204
    db.session.expire_all()
    payment = db.session.scalar(sa.select(Payment).where(Payment.out_trade_no == order.out_trade_no))
    return order, bills, payment


def _age(order, minutes=10):
    db.session.execute(sa.update(PayOrder).where(PayOrder.id == order.id)
                       .values(created_dt=now_utc() - timedelta(minutes=minutes)))
    db.session.commit()


# ---------------------------------------------------------------- refunds


def test_partial_refund_then_notification_finalises_it(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    order, [bill], payment = _paid_order(fake_wechat, merchant, 10000)

    refund = wechat_payments.request_refund(payment.id, 3000, "多收了管理费")
    db.session.commit()
    wechat_payments.submit_refund(refund.id)
    db.session.commit()

    [at_wechat] = [r for r in fake_wechat.refunds() if r["out_refund_no"] == refund.out_refund_no]
    assert at_wechat["amount"]["refund"] == 3000 and at_wechat["status"] == "PROCESSING"
    assert refund.status == RefundStatus.processing and refund.refund_id

    result = fake_wechat.notify_refund(refund.out_refund_no, status="SUCCESS")

    assert result["status_code"] == 204, result
    db.session.expire_all()
    refund = db.session.get(Refund, refund.id)
    assert refund.status == RefundStatus.succeeded
    assert db.session.get(Payment, payment.id).refunded_fen == 3000
    bill = db.session.get(Bill, bill.id)
    assert bill.paid_fen == 7000 and bill.status == BillStatus.partially_paid
    record = db.session.scalar(sa.select(PayNotification).where(PayNotification.out_refund_no == refund.out_refund_no))
    assert record.verdict == NotificationVerdict.ok

    # WeChat re-sends it: nothing changes
    again = fake_wechat.notify_refund(refund.out_refund_no, status="SUCCESS")
    assert again["status_code"] == 204
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).refunded_fen == 3000


def test_over_refund_is_refused_before_calling_wechat(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    _order, _bills, payment = _paid_order(fake_wechat, merchant, 10000)
    first = wechat_payments.request_refund(payment.id, 6000, "部分退款")
    db.session.commit()
    before = len(fake_wechat.refunds())

    with pytest.raises(ValidationFailed) as exc:
        wechat_payments.request_refund(payment.id, 4001, "再退一笔")
    db.session.rollback()

    assert exc.value.code == "over_refund"
    assert len(fake_wechat.refunds()) == before
    assert db.session.scalar(sa.select(sa.func.count(Refund.id))) == 1
    assert first.amount_fen == 6000


def test_retry_reuses_out_refund_no(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    _order, _bills, payment = _paid_order(fake_wechat, merchant, 8000)
    refund = wechat_payments.request_refund(payment.id, 8000, "全额退款")
    db.session.commit()

    wechat_payments.submit_refund(refund.id)
    db.session.commit()
    wechat_payments.submit_refund(refund.id)  # e.g. the first answer was lost
    db.session.commit()

    mine = [r for r in fake_wechat.refunds() if r["out_trade_no"] == payment.out_trade_no]
    assert [r["out_refund_no"] for r in mine] == [refund.out_refund_no]


def test_refund_status_from_query(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    _order, _bills, payment = _paid_order(fake_wechat, merchant, 8000)
    refund = wechat_payments.request_refund(payment.id, 2000, "退款")
    db.session.commit()
    wechat_payments.submit_refund(refund.id)
    db.session.commit()
    fake_wechat.notify_refund(refund.out_refund_no, status="SUCCESS", notify=False)  # notification lost

    wechat_payments.query_refund(refund.id)
    db.session.commit()

    db.session.expire_all()
    assert db.session.get(Refund, refund.id).status == RefundStatus.succeeded
    assert db.session.get(Payment, payment.id).refunded_fen == 2000


def test_tampered_refund_notification_is_rejected(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    _order, _bills, payment = _paid_order(fake_wechat, merchant, 8000)
    refund = wechat_payments.request_refund(payment.id, 2000, "退款")
    db.session.commit()
    wechat_payments.submit_refund(refund.id)
    db.session.commit()

    result = fake_wechat.notify_refund(refund.out_refund_no, status="SUCCESS", tamper="wrong_key")

    assert result["status_code"] == 401
    db.session.expire_all()
    assert db.session.get(Refund, refund.id).status == RefundStatus.processing


# ---------------------------------------------------------------- reconciliation


def test_reconciliation_applies_a_paid_order_whose_notification_was_lost(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 4200)
    order, _ = wechat_payments.create_pay_order(merchant, OPENID, [bill.id])
    db.session.commit()
    paid = fake_wechat.pay(order.out_trade_no, notify=False)
    assert wechat_payments.orders_to_reconcile() == []  # too young to be queried
    _age(order)

    assert wechat_payments.orders_to_reconcile() == [order.id]
    assert wechat_payments.reconcile_pay_order(order.id) == "ok"
    db.session.commit()

    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.paid
    payment = db.session.scalar(sa.select(Payment).where(Payment.out_trade_no == order.out_trade_no))
    assert payment.transaction_id == paid["transaction_id"]
    # the late notification then changes nothing
    assert fake_wechat.pay(order.out_trade_no)["status_code"] == 204
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1


def test_reconciliation_checks_amounts_too(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 4200)
    order, _ = wechat_payments.create_pay_order(merchant, OPENID, [bill.id])
    order.amount_fen = 4100  # our record disagrees with what WeChat was asked
    db.session.commit()
    fake_wechat.pay(order.out_trade_no, notify=False)
    _age(order)

    assert wechat_payments.reconcile_pay_order(order.id) == "suspicious"
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.issued
    record = db.session.scalar(sa.select(PayNotification))
    assert record.reason == "amount_mismatch" and record.channel.value == "query"


def test_reconciliation_closes_expired_orders(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 4200)
    order, _ = wechat_payments.create_pay_order(merchant, OPENID, [bill.id])
    db.session.commit()
    _age(order, minutes=60)
    db.session.execute(sa.update(PayOrder).where(PayOrder.id == order.id)
                       .values(expires_dt=now_utc() - timedelta(minutes=1)))
    db.session.commit()

    assert wechat_payments.reconcile_pay_order(order.id) == "closed"
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(PayOrder, order.id).status == PayOrderStatus.closed
    assert fake_wechat.order(order.out_trade_no)["trade_state"] == "CLOSED"


# ---------------------------------------------------------------- trade bill


def test_trade_bill_mismatches_are_listed(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    _paid_order(fake_wechat, merchant, 1000)  # matches
    bill = make_bill(merchant, 2000)
    lost, _ = wechat_payments.create_pay_order(merchant, OPENID, [bill.id])
    db.session.commit()
    fake_wechat.pay(lost.out_trade_no, notify=False)  # paid at WeChat, not here
    other = make_bill(merchant, 3000)
    record_payment(merchant.market_id, merchant.id, [other.id], 3000, "wechat", "4200000000NOTATWECHAT",
                   now_utc(), out_trade_no="PNOTATWECHAT01")  # here, not at WeChat
    db.session.commit()

    counts = wechat_payments.check_trade_bill(today_local())
    db.session.commit()

    rows = {(m.kind, m.out_trade_no): m for m in db.session.scalars(sa.select(TradeBillMismatch))}
    assert set(rows) >= {(MismatchKind.missing_here, lost.out_trade_no),
                         (MismatchKind.missing_at_wechat, "PNOTATWECHAT01")}
    assert rows[(MismatchKind.missing_here, lost.out_trade_no)].wechat_amount_fen == 2000
    assert rows[(MismatchKind.missing_at_wechat, "PNOTATWECHAT01")].local_amount_fen == 3000
    assert counts["new_mismatches"] == len(rows)
    # running it again adds nothing
    assert wechat_payments.check_trade_bill(today_local())["new_mismatches"] == 0


# ---------------------------------------------------------------- concurrency


def test_concurrent_deliveries_record_one_payment(market, fake_wechat, wxpay, live_server):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises writers")
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 7700)
    order, _ = wechat_payments.create_pay_order(merchant, OPENID, [bill.id])
    db.session.commit()
    fake_wechat.pay(order.out_trade_no, notify=False)
    notifications = [fake_wechat.build_pay_notification(order.out_trade_no) for _ in range(8)]
    start = threading.Barrier(len(notifications))
    answers = []

    def deliver(headers, body):
        start.wait()
        answers.append(requests.post(live_server + NOTIFY_PATH, data=body, headers=headers, timeout=30).status_code)

    threads = [threading.Thread(target=deliver, args=n) for n in notifications]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [204] * len(notifications)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert db.session.get(Bill, bill.id).paid_fen == 7700
    verdicts = sorted(n.verdict.value for n in db.session.scalars(sa.select(PayNotification)))
    assert verdicts == ["duplicate"] * (len(notifications) - 1) + ["ok"]


def test_refund_notification_at_the_payment_url_and_abnormal_refunds(market, fake_wechat, wxpay, live_server):
    merchant = market.merchants_a[0]
    _order, [bill], payment = _paid_order(fake_wechat, merchant, 6000)
    refund = wechat_payments.request_refund(payment.id, 6000, "全额退款")
    db.session.commit()
    wechat_payments.submit_refund(refund.id)
    db.session.commit()

    # one notify URL for everything (as in the demo): dispatched on event_type
    result = fake_wechat.notify_refund(refund.out_refund_no, status="ABNORMAL", notify_url=live_server + NOTIFY_PATH)

    assert result["status_code"] == 204
    db.session.expire_all()
    assert db.session.get(Refund, refund.id).status == RefundStatus.failed
    assert db.session.get(Bill, bill.id).status == BillStatus.paid  # the money did not go back
    record = db.session.scalar(sa.select(PayNotification).where(PayNotification.out_refund_no == refund.out_refund_no))
    assert (record.verdict, record.reason) == (NotificationVerdict.suspicious, "refund_abnormal")
