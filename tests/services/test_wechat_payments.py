"""WeChat Pay orders and notifications against the fake WeChat, notifications delivered over loopback HTTP."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill, Payment
from app.models.enums import BillStatus
from app.models.wechatpay import NotificationVerdict, PayNotification, PayOrder, PayOrderStatus
from app.services import wechat_payments
from app.services.exceptions import Conflict, NotFound, ValidationFailed
from tests.wechatpay_support import live_server, make_bill, wxpay  # noqa: F401

OPENID = "o-payer-1"


def _order_for(merchant, *bills):
    order, created = wechat_payments.create_pay_order(merchant, OPENID, [b.id for b in bills])
    db.session.commit()
    return order, created


def _reload(model, id_):
    db.session.expire_all()
    return db.session.get(model, id_)


def _notifications():
    db.session.expire_all()
    return list(db.session.scalars(sa.select(PayNotification).order_by(PayNotification.id)))


def test_order_paid_through_a_real_notification(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill_1, bill_2 = make_bill(merchant, 12000), make_bill(merchant, 3456)
    order, created = _order_for(merchant, bill_1, bill_2)
    assert created and order.amount_fen == 15456 and order.prepay_id
    assert len(order.out_trade_no) <= 32
    assert fake_wechat.order(order.out_trade_no)["amount"]["total"] == 15456

    result = fake_wechat.pay(order.out_trade_no)

    assert result["status_code"] == 204, result
    payment = db.session.scalar(sa.select(Payment).where(Payment.out_trade_no == order.out_trade_no))
    db.session.refresh(payment)
    assert payment.transaction_id == result["transaction_id"]
    assert payment.amount_fen == 15456 and payment.payer_openid == OPENID
    assert {_reload(Bill, bill_1.id).status, _reload(Bill, bill_2.id).status} == {BillStatus.paid}
    assert _reload(PayOrder, order.id).status == PayOrderStatus.paid
    [record] = _notifications()
    assert record.verdict == NotificationVerdict.ok and record.http_status == 204
    assert record.amount_fen == 15456 and "payer" not in record.resource


def test_replayed_three_times_records_one_payment(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    order, _ = _order_for(merchant, bill)

    result = fake_wechat.pay(order.out_trade_no, repeat=3)

    assert [d["status_code"] for d in result["deliveries"]] == [204, 204, 204]
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert _reload(Bill, bill.id).paid_fen == 5000
    assert [n.verdict for n in _notifications()] == [NotificationVerdict.ok] + [NotificationVerdict.duplicate] * 2


def test_one_fen_short_is_suspicious_and_leaves_the_bill_unpaid(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    order, _ = _order_for(merchant, bill)

    result = fake_wechat.pay(order.out_trade_no, tamper="amount_short")

    assert result["status_code"] == 204  # received and held for Finance: WeChat need not retry
    assert _reload(Bill, bill.id).status == BillStatus.issued
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    [record] = _notifications()
    assert record.verdict == NotificationVerdict.suspicious and record.reason == "amount_mismatch"
    assert record.amount_fen == 4999 and record.pay_order_id == order.id
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "pay_notifications"))
    assert entry is not None and "amount_mismatch" in entry.summary


@pytest.mark.parametrize("tamper,reason", [
    ("wrong_key", "bad_signature"),
    ("tampered_body", "bad_signature"),
    ("stale", "stale_timestamp"),
    ("missing_headers", "missing_headers"),
    ("unknown_serial", "unknown_serial"),
])
def test_untrusted_notifications_answer_401_and_change_nothing(market, fake_wechat, wxpay, tamper, reason):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    order, _ = _order_for(merchant, bill)

    result = fake_wechat.pay(order.out_trade_no, tamper=tamper)

    assert result["status_code"] == 401
    assert '"FAIL"' in result["body"]
    assert _reload(Bill, bill.id).status == BillStatus.issued
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    [record] = _notifications()
    assert (record.verdict, record.reason, record.http_status) == (NotificationVerdict.rejected, reason, 401)


def test_undecryptable_notification_answers_400(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    order, _ = _order_for(merchant, make_bill(merchant, 5000))
    result = fake_wechat.pay(order.out_trade_no, tamper="wrong_apiv3_key")
    assert result["status_code"] == 400
    assert _notifications()[0].reason == "decrypt_failed"


@pytest.mark.parametrize("tamper", ["wrong_mchid", "wrong_appid"])
def test_other_merchant_or_app_is_suspicious(market, fake_wechat, wxpay, tamper):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    order, _ = _order_for(merchant, bill)

    result = fake_wechat.pay(order.out_trade_no, tamper=tamper)

    assert result["status_code"] == 204
    assert _reload(Bill, bill.id).status == BillStatus.issued
    [record] = _notifications()
    assert (record.verdict, record.reason) == (NotificationVerdict.suspicious, tamper)


def test_unknown_out_trade_no_is_stored_as_suspicious(market, fake_wechat, wxpay):
    out_trade_no = "X" + uuid.uuid4().hex[:20]
    wxpay.create_jsapi_order(out_trade_no, "not ours", 100, OPENID)

    result = fake_wechat.pay(out_trade_no)

    assert result["status_code"] == 204
    [record] = _notifications()
    assert (record.verdict, record.reason, record.out_trade_no) == (
        NotificationVerdict.suspicious, "unknown_order", out_trade_no)
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0


def test_retry_for_same_bills_reuses_the_open_order(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    first, _ = _order_for(merchant, bill)
    again, created = _order_for(merchant, bill)
    assert not created and again.id == first.id
    assert len([o for o in fake_wechat.orders() if o["out_trade_no"] == first.out_trade_no]) == 1


def test_changed_amount_closes_the_old_order(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    first, _ = _order_for(merchant, bill)
    bill.late_fee_fen = 25  # the amount owed changed
    db.session.commit()

    second, created = _order_for(merchant, bill)

    assert created and second.out_trade_no != first.out_trade_no and second.amount_fen == 5025
    assert _reload(PayOrder, first.id).status == PayOrderStatus.closed
    assert fake_wechat.order(first.out_trade_no)["trade_state"] == "CLOSED"
    assert fake_wechat.order(second.out_trade_no)["trade_state"] == "NOTPAY"


def test_bill_checks(market, wxpay):
    merchant, other = market.merchants_a[0], market.merchants_b[0]
    theirs = make_bill(other, 5000)
    paid = make_bill(merchant, 5000, status=BillStatus.paid)
    void = make_bill(merchant, 5000, status=BillStatus.void)
    db.session.commit()
    with pytest.raises(NotFound):
        wechat_payments.create_pay_order(merchant, OPENID, [theirs.id])
    for bill in (paid, void):
        with pytest.raises(Conflict):
            wechat_payments.create_pay_order(merchant, OPENID, [bill.id])
    with pytest.raises(ValidationFailed):
        wechat_payments.create_pay_order(merchant, OPENID, [])
    for impossible in (2**63, 2**31, 0, -5):  # ids no row can have: not found, not a database error
        with pytest.raises(NotFound):
            wechat_payments.create_pay_order(merchant, OPENID, [impossible])
    assert db.session.scalar(sa.select(sa.func.count(PayOrder.id))) == 0


def test_notification_for_a_bill_already_paid_in_cash_keeps_the_surplus(market, fake_wechat, wxpay):
    from datetime import timedelta

    from app.services.payments import record_payment
    from app.utils.dates import now_utc

    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    order, _ = _order_for(merchant, bill)
    record_payment(merchant.market_id, merchant.id, [bill.id], 5000, "cash", "CASH-TEST-1",
                   now_utc() - timedelta(minutes=1))
    db.session.commit()

    result = fake_wechat.pay(order.out_trade_no)

    assert result["status_code"] == 204
    payment = db.session.scalar(sa.select(Payment).where(Payment.out_trade_no == order.out_trade_no))
    assert payment.amount_fen == 5000 and payment.unallocated_fen == 5000  # to be refunded by Finance
    assert _reload(Bill, bill.id).paid_fen == 5000


def test_platform_certificate_mode(app, market, fake_wechat, live_server, tmp_path):
    """Wechatpay-Serial names a platform certificate (downloaded from /v3/certificates) instead of a public key."""
    from app.integrations.wechatpay import WeChatPay, WeChatPayConfig
    from tests.wechatpay_support import NOTIFY_PATH

    client = WeChatPay(WeChatPayConfig.from_env(
        fake_wechat.settings, notify_url=live_server + NOTIFY_PATH, public_key_pem=None, public_key_id=None,
        platform_cert_dir=str(tmp_path / "certs"),
    ))
    app.extensions["wechatpay"] = client
    fake_wechat.configure(platform_mode="certificate")
    try:
        merchant = market.merchants_a[0]
        bill = make_bill(merchant, 3300)
        order, _ = _order_for(merchant, bill)
        result = fake_wechat.pay(order.out_trade_no)
        forged = fake_wechat.pay(order.out_trade_no, tamper="wrong_key")
    finally:
        fake_wechat.configure(platform_mode="public_key")
        app.extensions.pop("wechatpay", None)
    assert result["status_code"] == 204 and forged["status_code"] == 401
    assert _reload(Bill, bill.id).status == BillStatus.paid
    assert [n.verdict for n in _notifications()] == [NotificationVerdict.ok, NotificationVerdict.rejected]
    assert _notifications()[0].header_serial != fake_wechat.settings["WECHATPAY_PUBLIC_KEY_ID"]


def test_an_order_with_a_suspicious_notification_is_not_reused(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    first, _ = _order_for(merchant, bill)
    fake_wechat.pay(first.out_trade_no, tamper="amount_short")  # forged: the order is still unpaid at WeChat

    second, created = _order_for(merchant, bill)

    assert created and second.out_trade_no != first.out_trade_no
    assert _reload(PayOrder, first.id).status == PayOrderStatus.closed
    assert fake_wechat.pay(second.out_trade_no)["status_code"] == 204
    assert _reload(Bill, bill.id).status == BillStatus.paid
