"""parse_notification on notifications the fake POSTs over HTTP, in both platform key modes."""
from __future__ import annotations

import time

import pytest

from app.integrations.wechatpay import NotificationRejected

REJECTIONS = [
    ("wrong_key", "bad_signature"),
    ("tampered_body", "bad_signature"),
    ("stale", "stale_timestamp"),
    ("unknown_serial", "unknown_serial"),
    ("missing_headers", "missing_headers"),
    ("wrong_apiv3_key", "decrypt_failed"),
    ("wrong_mchid", "wrong_mchid"),
    ("wrong_appid", "wrong_appid"),
]


@pytest.fixture
def order(pay, new_no):
    """An unpaid order of 2500 fen whose notify_url is the receiver."""
    out_trade_no = new_no()
    pay.create_jsapi_order(out_trade_no, "A区12号 2026年11月账单", 2500, "o-payer-1")
    return out_trade_no


def test_payment_notification_is_verified_and_decrypted(fake, pay, receiver, order):
    delivery = fake.pay(order)

    assert delivery["status_code"] == 200  # the receiver accepted it
    received = receiver.last()
    assert received["path"] == "/wechatpay/notify"
    notification = pay.parse_notification(received["headers"], received["body"])
    assert notification["event_type"] == "TRANSACTION.SUCCESS"
    assert notification["id"].startswith("EV-")
    resource = notification["resource"]
    assert resource["out_trade_no"] == order
    assert resource["trade_state"] == "SUCCESS"
    assert resource["amount"]["total"] == 2500
    assert resource["transaction_id"] == pay.query_order(order)["transaction_id"]


@pytest.mark.parametrize(("tamper", "reason"), REJECTIONS)
def test_bad_notifications_are_rejected(fake, pay, receiver, order, tamper, reason):
    delivery = fake.pay(order, tamper=tamper)

    assert delivery["status_code"] == 400
    with pytest.raises(NotificationRejected) as caught:
        pay.parse_notification(receiver.last()["headers"], receiver.last()["body"])
    assert caught.value.reason == reason
    assert pay.query_order(order)["trade_state"] == "NOTPAY"  # a forged notification pays nothing


def test_short_amount_passes_the_signature_check_so_the_caller_must_compare(fake, pay, receiver, order):
    fake.pay(order, tamper="amount_short")

    notification = pay.parse_notification(receiver.last()["headers"], receiver.last()["body"])

    assert notification["resource"]["amount"]["total"] == 2499  # the order is 2500: the service must refuse


def test_repeated_notification_keeps_its_id(fake, pay, receiver, order):
    delivery = fake.pay(order, repeat=3)

    assert [d["status_code"] for d in delivery["deliveries"]] == [200, 200, 200]
    ids = {pay.parse_notification(r["headers"], r["body"])["id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1


def test_header_spellings_are_accepted(fake, pay, order):
    headers, body = fake.build_pay_notification(order)
    lower = {name.lower(): value for name, value in headers.items()}
    wsgi = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}

    assert pay.parse_notification(lower, body)["resource"]["out_trade_no"] == order
    assert pay.parse_notification(wsgi, body.decode())["resource"]["out_trade_no"] == order


def test_notification_signed_in_the_future_is_rejected(fake, pay, order, monkeypatch):
    headers, body = fake.build_pay_notification(order)
    monkeypatch.setattr(time, "time", lambda real=time.time: real() - 400)  # our clock is 400 s behind

    with pytest.raises(NotificationRejected) as caught:
        pay.parse_notification(headers, body)

    assert caught.value.reason == "stale_timestamp"


def test_garbage_body_is_rejected(fake, pay, order):
    headers, _ = fake.build_pay_notification(order)

    with pytest.raises(NotificationRejected) as caught:
        pay.parse_notification(headers, b"not json")

    assert caught.value.reason == "bad_signature"


def test_certificate_mode_notification_is_verified(fake, cert_pay, receiver, new_no):
    out_trade_no = new_no()
    cert_pay.create_jsapi_order(out_trade_no, "电费", 700, "o-payer-2")

    delivery = fake.pay(out_trade_no)

    assert delivery["status_code"] == 200
    headers = receiver.last()["headers"]
    assert headers["Wechatpay-Serial"] == fake.creds.platform_cert_serial
    notification = cert_pay.parse_notification(headers, receiver.last()["body"])
    assert notification["resource"]["amount"]["total"] == 700


@pytest.mark.parametrize(("tamper", "reason"), REJECTIONS)
def test_certificate_mode_rejects_bad_notifications(fake, cert_pay, receiver, new_no, tamper, reason):
    out_trade_no = new_no()
    cert_pay.create_jsapi_order(out_trade_no, "电费", 700, "o-payer-2")

    delivery = fake.pay(out_trade_no, tamper=tamper)

    assert delivery["status_code"] == 400
    with pytest.raises(NotificationRejected) as caught:
        cert_pay.parse_notification(receiver.last()["headers"], receiver.last()["body"])
    assert caught.value.reason == reason


def test_public_key_client_rejects_a_certificate_it_cannot_know(fake, pay, order, cert_mode):
    headers, body = fake.build_pay_notification(order)
    headers["Wechatpay-Serial"] = "PUB_KEY_ID_0000000000000000000000"

    with pytest.raises(NotificationRejected) as caught:
        pay.parse_notification(headers, body)

    assert caught.value.reason == "unknown_serial"
