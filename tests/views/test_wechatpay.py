"""Finance's WeChat Pay pages: suspicious notifications in red, mismatches, refunds from the back office."""
from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import Payment, Refund
from app.models.enums import RefundStatus
from app.services import wechat_payments
from tests.wechatpay_support import live_server, make_bill, wxpay  # noqa: F401


def _paid(fake, merchant, amount):
    bill = make_bill(merchant, amount)
    order, _ = wechat_payments.create_pay_order(merchant, "o-view", [bill.id])
    db.session.commit()
    fake.pay(order.out_trade_no)
    db.session.expire_all()
    return order, db.session.scalar(sa.select(Payment).where(Payment.out_trade_no == order.out_trade_no))


def test_finance_sees_orders_and_suspicious_notifications_in_red(login_as, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    order, _payment = _paid(fake_wechat, merchant, 2000)
    short = make_bill(merchant, 3000)
    suspicious_order, _ = wechat_payments.create_pay_order(merchant, "o-view", [short.id])
    db.session.commit()
    fake_wechat.pay(suspicious_order.out_trade_no, tamper="amount_short")
    finance = login_as("finance")

    orders = finance.get("/wechatpay/orders/").get_data(as_text=True)
    assert order.out_trade_no in orders and suspicious_order.out_trade_no in orders

    page = finance.get("/wechatpay/notifications/").get_data(as_text=True)
    assert 'id="suspicious-alert"' in page
    assert '<tr class="suspicious">' in page and "amount_mismatch" in page
    assert '<tr class="ok">' in page

    record_id = db.session.execute(sa.text(
        "SELECT id FROM pay_notifications WHERE verdict = 'suspicious'")).scalar_one()
    resp = finance.post(f"/wechatpay/notifications/{record_id}/resolve")
    assert resp.status_code == 302
    page = finance.get("/wechatpay/notifications/").get_data(as_text=True)
    assert 'id="suspicious-alert"' not in page


def test_other_roles_cannot_open_the_pages(login_as, market):
    for username in ("clerk", "manager1", "repairer1"):
        client = login_as(username)
        for path in ("/wechatpay/orders/", "/wechatpay/notifications/", "/wechatpay/reconciliation/",
                     "/wechatpay/refunds/"):
            resp = client.get(path)
            assert resp.status_code in (302, 403), (username, path, resp.status_code)


def test_refund_from_the_back_office(login_as, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    order, payment = _paid(fake_wechat, merchant, 5000)
    finance = login_as("finance")

    page = finance.get("/wechatpay/refunds/").get_data(as_text=True)
    assert order.out_trade_no in page and "¥50.00" in page

    too_much = finance.post(f"/wechatpay/refunds/new/{payment.id}", data={"amount": "50.01", "reason": "多收"})
    assert too_much.status_code == 200 and "超过可退金额" in too_much.get_data(as_text=True)

    resp = finance.post(f"/wechatpay/refunds/new/{payment.id}", data={"amount": "12.50", "reason": "多收了卫生费"})
    assert resp.status_code == 302
    db.session.expire_all()
    [refund] = db.session.scalars(sa.select(Refund)).all()
    assert refund.amount_fen == 1250 and refund.status == RefundStatus.processing and refund.refund_id

    fake_wechat.notify_refund(refund.out_refund_no, status="SUCCESS", notify=False)
    resp = finance.post(f"/wechatpay/refunds/{refund.id}/query")
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Refund, refund.id).status == RefundStatus.succeeded
    page = finance.get("/wechatpay/refunds/").get_data(as_text=True)
    assert refund.out_refund_no in page and "¥37.50" in page  # still refundable


def test_trade_bill_check_from_the_back_office(login_as, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 2500)
    lost, _ = wechat_payments.create_pay_order(merchant, "o-view", [bill.id])
    db.session.commit()
    fake_wechat.pay(lost.out_trade_no, notify=False)
    finance = login_as("finance")
    from app.utils.dates import today_local

    resp = finance.post("/wechatpay/reconciliation/check", data={"bill_date": today_local().isoformat()})
    assert resp.status_code == 302
    page = finance.get("/wechatpay/reconciliation/").get_data(as_text=True)
    assert lost.out_trade_no in page and "¥25.00" in page
