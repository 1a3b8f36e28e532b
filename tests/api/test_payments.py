"""POST /api/mp/v1/payments and the notification endpoints, as the mini-program and WeChat see them."""
from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, Payment
from app.models.enums import BillStatus
from app.models.wechatpay import PayNotification, PayOrder, PayOrderStatus
from tests.api.helpers import assert_error
from tests.wechatpay_support import NOTIFY_PATH, live_server, make_bill, wxpay  # noqa: F401


def test_create_payment_and_pay_with_request_payment(mp_client, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bills = [make_bill(merchant, 12345), make_bill(merchant, 655)]
    db.session.commit()
    owner = mp_client.bound(merchant)

    resp = owner.post("payments", json={"bill_ids": [b.id for b in bills]})

    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["amount_fen"] == 13000 and body["status"] == "open" and body["is_reused"] is False
    assert len(body["out_trade_no"]) <= 32
    params = body["pay_params"]
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "RSA" and params["package"].startswith("prepay_id=")
    assert fake_wechat.order(body["out_trade_no"])["payer"]["openid"] == owner.openid

    # wx.requestPayment on the phone: the fake checks paySign, takes the money and notifies the live app
    result = fake_wechat.request_payment(params)

    assert result["status_code"] == 204, result
    db.session.expire_all()
    assert {db.session.get(Bill, b.id).status for b in bills} == {BillStatus.paid}
    [payment] = db.session.scalars(sa.select(Payment)).all()
    assert payment.transaction_id == result["transaction_id"] and payment.amount_fen == 13000

    # paying again is refused: the bills are paid
    again = owner.post("payments", json={"bill_ids": [bills[0].id]})
    assert_error(again, 409, "bill_not_payable")


def test_retry_reuses_the_open_order_and_a_new_amount_replaces_it(mp_client, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    db.session.commit()
    owner = mp_client.bound(merchant)

    first = owner.post("payments", json={"bill_ids": [bill.id]}).get_json()
    second = owner.post("payments", json={"bill_ids": [bill.id]})
    assert second.status_code == 200 and second.get_json()["is_reused"] is True
    assert second.get_json()["out_trade_no"] == first["out_trade_no"]

    db.session.get(Bill, bill.id).late_fee_fen = 150
    db.session.commit()
    third = owner.post("payments", json={"bill_ids": [bill.id]})
    assert third.status_code == 201
    assert third.get_json()["amount_fen"] == 5150 and third.get_json()["out_trade_no"] != first["out_trade_no"]
    assert fake_wechat.order(first["out_trade_no"])["trade_state"] == "CLOSED"
    db.session.expire_all()
    statuses = dict(db.session.execute(sa.select(PayOrder.out_trade_no, PayOrder.status)).all())
    assert statuses[first["out_trade_no"]] == PayOrderStatus.closed


def test_bill_checks(mp_client, market, wxpay):
    merchant, other = market.merchants_a[0], market.merchants_b[0]
    theirs = make_bill(other, 5000)
    paid = make_bill(merchant, 5000, status=BillStatus.paid)
    void = make_bill(merchant, 5000, status=BillStatus.void)
    db.session.commit()
    owner = mp_client.bound(merchant)

    assert_error(owner.post("payments", json={"bill_ids": [theirs.id]}), 404, "bill_not_found")
    assert_error(owner.post("payments", json={"bill_ids": [999999]}), 404, "bill_not_found")
    assert_error(owner.post("payments", json={"bill_ids": [paid.id]}), 409, "bill_not_payable")
    assert_error(owner.post("payments", json={"bill_ids": [void.id]}), 409, "bill_not_payable")
    assert_error(owner.post("payments", json={"bill_ids": []}), 422)
    assert_error(owner.post("payments", json={"bill_ids": ["1"]}), 422)
    # ids beyond the database's integer range are refused, not sent to the database (was a 500)
    for huge in (2**31, 2**63, 256400273440746741433196575981568000):
        err = assert_error(owner.post("payments", json={"bill_ids": [huge]}), 422, "validation_failed")
        assert "bill_ids" in err["details"]["fields"]
    assert db.session.scalar(sa.select(sa.func.count(PayOrder.id))) == 0
    assert_error(owner.post("payments", json={}), 422)
    assert_error(mp_client.anonymous().post("payments", json={"bill_ids": [paid.id]}), 401)
    assert_error(mp_client.logged_in().post("payments", json={"bill_ids": [paid.id]}), 403)
    assert db.session.scalar(sa.select(sa.func.count(PayOrder.id))) == 0


def test_notification_posted_with_the_test_client(client, mp_client, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 900)
    db.session.commit()
    body = mp_client.bound(merchant).post("payments", json={"bill_ids": [bill.id]}).get_json()
    fake_wechat.pay(body["out_trade_no"], notify=False)

    forged_headers, forged = fake_wechat.build_pay_notification(body["out_trade_no"], tamper="tampered_body")
    resp = client.post(NOTIFY_PATH, data=forged, headers=forged_headers)
    assert resp.status_code == 401 and resp.get_json()["code"] == "FAIL"

    malformed = client.post(NOTIFY_PATH, data=b"not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 401  # no Wechatpay-* headers: not from WeChat

    headers, raw = fake_wechat.build_pay_notification(body["out_trade_no"])
    resp = client.post(NOTIFY_PATH, data=raw, headers=headers)
    assert resp.status_code == 204 and resp.data == b""
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.paid
    verdicts = [n.verdict.value for n in db.session.scalars(sa.select(PayNotification).order_by(PayNotification.id))]
    assert verdicts == ["rejected", "rejected", "ok"]


def test_payment_creation_is_rate_limited(app, mp_client, market, fake_wechat, wxpay):
    from app import create_app
    from app.extensions import limiter
    from config import TestingConfig
    from tests.api.helpers import MpClient

    class LimitedConfig(TestingConfig):
        RATELIMIT_ENABLED = True
        RATELIMIT_STORAGE_URI = "memory://"
        MP_PAYMENT_RATE_LIMIT = "3/minute"

    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 5000)
    db.session.commit()
    owner = mp_client.bound(merchant)
    limited = create_app(LimitedConfig)
    try:
        limited.config.update(fake_wechat.settings)
        limited.extensions["wechatpay"] = wxpay
        client = MpClient(limited, token=owner.token)
        statuses = [client.post("payments", json={"bill_ids": [bill.id]}).status_code for _ in range(4)]
        assert statuses == [201, 200, 200, 429]
        assert_error(client.post("payments", json={"bill_ids": [bill.id]}), 429, "rate_limited")
    finally:
        limiter.enabled = False  # the session app runs without limits


def test_polling_an_order_whose_notification_is_lost_books_the_payment_once(mp_client, market, fake_wechat, wxpay,
                                                                            monkeypatch):
    from datetime import timedelta

    from app.services import wechat_payments

    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 8800)
    db.session.commit()
    owner = mp_client.bound(merchant)
    order = owner.post("payments", json={"bill_ids": [bill.id]}).get_json()
    no = order["out_trade_no"]

    status = owner.get(f"payments/{no}")
    assert status.status_code == 200 and status.get_json()["status"] == "open"  # too early to ask WeChat
    assert status.get_json()["paid_at"] is None

    fake_wechat.pay(no, notify=False)  # paid at WeChat; the notification never arrives
    monkeypatch.setattr(wechat_payments, "CONFIRM_QUERY_AFTER", timedelta(0))
    body = owner.get(f"payments/{no}").get_json()
    again = owner.get(f"payments/{no}").get_json()

    assert body["status"] == "paid" and body["paid_at"] and body["bill_ids"] == [bill.id]
    assert body["amount_fen"] == 8800 and again["status"] == "paid"
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.paid
    [payment] = db.session.scalars(sa.select(Payment)).all()
    assert payment.transaction_id == fake_wechat.order(no)["transaction_id"]
    [record] = db.session.scalars(sa.select(PayNotification)).all()  # the order query, stored like a notification
    assert record.verdict.value == "ok"


def test_an_unpaid_order_is_asked_about_at_most_every_few_seconds(mp_client, market, fake_wechat, wxpay,
                                                                 monkeypatch):
    from datetime import timedelta

    from app.services import wechat_payments

    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 3000)
    db.session.commit()
    owner = mp_client.bound(merchant)
    no = owner.post("payments", json={"bill_ids": [bill.id]}).get_json()["out_trade_no"]
    monkeypatch.setattr(wechat_payments, "CONFIRM_QUERY_AFTER", timedelta(0))
    queries = []
    real_query = wxpay.query_order
    monkeypatch.setattr(wxpay, "query_order", lambda n: queries.append(n) or real_query(n))

    assert owner.get(f"payments/{no}").get_json()["status"] == "open"
    assert owner.get(f"payments/{no}").get_json()["status"] == "open"

    assert queries == [no]
    db.session.expire_all()
    assert db.session.scalar(sa.select(PayOrder.queried_dt).where(PayOrder.out_trade_no == no)) is not None
    assert db.session.get(Bill, bill.id).status == BillStatus.issued


def test_another_merchants_order_is_not_found(mp_client, market, fake_wechat, wxpay):
    mine, theirs = market.merchants_a[0], market.merchants_b[0]
    bill = make_bill(theirs, 1000)
    db.session.commit()
    no = mp_client.bound(theirs).post("payments", json={"bill_ids": [bill.id]}).get_json()["out_trade_no"]
    owner = mp_client.bound(mine)
    assert_error(owner.get(f"payments/{no}"), 404, "order_not_found")
    assert_error(owner.get("payments/P-no-such-order"), 404, "order_not_found")
    for junk in ("%00", "P%00abcdefgh", "x" * 40, "%E8%B4%A6%E5%8D%95"):
        assert_error(owner.get(f"payments/{junk}"), 404, "order_not_found")
