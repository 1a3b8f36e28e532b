"""WeChatPay orders against the fake over HTTP: create, pay parameters, query, close, errors."""
from __future__ import annotations

import base64
import socket
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.integrations.wechatpay import (
    WeChatPay,
    WeChatPayConfig,
    WeChatPayError,
    WeChatPayUnavailable,
)


def _pem_private_key() -> str:
    """A key WeChat Pay does not know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_public_key() -> str:
    """A public key that is not the platform's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_create_order_registers_it_with_wechat_pay(fake, pay, receiver, new_no):
    out_trade_no = new_no()

    prepay_id = pay.create_jsapi_order(out_trade_no, "A区12号 2026年11月账单", 12345, "o-payer-1")

    order = fake.order(out_trade_no)
    assert prepay_id.startswith("wx") and order["prepay_id"] == prepay_id
    assert order["trade_state"] == "NOTPAY"
    assert order["amount"]["total"] == 12345
    assert order["payer"]["openid"] == "o-payer-1"
    assert fake.state.orders[out_trade_no].notify_url == receiver.url


def test_same_order_twice_gives_the_same_prepay_id_but_another_amount_is_refused(pay, new_no):
    out_trade_no = new_no()
    first = pay.create_jsapi_order(out_trade_no, "管理费", 500, "o-payer-1")

    again = pay.create_jsapi_order(out_trade_no, "管理费", 500, "o-payer-1")
    with pytest.raises(WeChatPayError) as caught:
        pay.create_jsapi_order(out_trade_no, "管理费", 501, "o-payer-1")

    assert again == first
    assert (caught.value.status, caught.value.code) == (400, "INVALID_REQUEST")


def test_pay_params_are_signed_with_the_merchant_key(fake, pay, new_no):
    out_trade_no = new_no()
    prepay_id = pay.create_jsapi_order(out_trade_no, "水费", 880, "o-payer-2")

    params = pay.jsapi_pay_params(prepay_id)

    assert params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA"
    cert_pem = Path(fake.settings["WECHATPAY_MERCHANT_CERT_PATH"]).read_bytes()
    merchant_public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    message = f"{fake.creds.appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    merchant_public_key.verify(  # raises InvalidSignature when wrong
        base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    # and wx.requestPayment, as the fake plays it, accepts them and pays the order
    assert fake.request_payment(params, notify=False)["trade_state"] == "SUCCESS"
    assert pay.query_order(out_trade_no)["trade_state"] == "SUCCESS"


def test_query_shows_the_order_before_and_after_payment(fake, pay, new_no):
    out_trade_no = new_no()
    pay.create_jsapi_order(out_trade_no, "电费", 2599, "o-payer-3", attach="bill:42")

    before = pay.query_order(out_trade_no)
    fake.pay(out_trade_no, notify=False)
    after = pay.query_order(out_trade_no)

    assert before["trade_state"] == "NOTPAY" and "transaction_id" not in before
    assert after["trade_state"] == "SUCCESS"
    assert after["amount"] == {"total": 2599, "payer_total": 2599, "currency": "CNY", "payer_currency": "CNY"}
    assert len(after["transaction_id"]) == 28
    assert after["success_time"].endswith("+08:00")
    assert after["attach"] == "bill:42"


def test_close_order_then_reorder_is_refused(pay, new_no):
    out_trade_no = new_no()
    pay.create_jsapi_order(out_trade_no, "电费", 100, "o-payer-4")

    pay.close_order(out_trade_no)
    pay.close_order(out_trade_no)  # closing twice is harmless

    assert pay.query_order(out_trade_no)["trade_state"] == "CLOSED"
    with pytest.raises(WeChatPayError) as caught:
        pay.create_jsapi_order(out_trade_no, "电费", 100, "o-payer-4")
    assert (caught.value.status, caught.value.code) == (400, "ORDER_CLOSED")


def test_closing_a_paid_order_is_refused(pay, paid_order):
    with pytest.raises(WeChatPayError) as caught:
        pay.close_order(paid_order)

    assert caught.value.code == "ORDERPAID"
    assert pay.query_order(paid_order)["trade_state"] == "SUCCESS"


def test_unknown_order_is_404(pay, new_no):
    with pytest.raises(WeChatPayError) as caught:
        pay.query_order(new_no())

    assert (caught.value.status, caught.value.code) == (404, "ORDER_NOT_EXIST")


@pytest.mark.parametrize("amount", [12.34, Decimal("12.34"), "1234", True, None])
def test_amount_must_be_integer_fen(fake, pay, new_no, amount):
    orders_before = len(fake.orders())

    with pytest.raises(TypeError):
        pay.create_jsapi_order(new_no(), "电费", amount, "o-payer-5")

    assert len(fake.orders()) == orders_before


@pytest.mark.parametrize("amount", [0, -100])
def test_amount_must_be_positive(pay, new_no, amount):
    with pytest.raises(ValueError):
        pay.create_jsapi_order(new_no(), "电费", amount, "o-payer-5")


def test_time_expire_is_sent_in_beijing_time(fake, pay, new_no):
    out_trade_no = new_no()
    expire = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    pay.create_jsapi_order(out_trade_no, "电费", 100, "o-payer-6", time_expire=expire)

    stored = fake.state.orders[out_trade_no].time_expire
    assert stored == expire and stored.utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError):
        pay.create_jsapi_order(new_no(), "电费", 100, "o-payer-6", time_expire=datetime(2030, 1, 2))


def test_out_trade_no_outside_wechat_charset_is_refused_locally(pay):
    with pytest.raises(ValueError):
        pay.query_order("../../v3/refund")


def test_request_signed_with_an_unknown_merchant_key_is_401(fake, receiver, new_no):
    config = WeChatPayConfig.from_env(fake.settings, notify_url=receiver.url, private_key_pem=_pem_private_key())

    with pytest.raises(WeChatPayError) as caught:
        WeChatPay(config).create_jsapi_order(new_no(), "电费", 100, "o-payer-7")

    assert (caught.value.status, caught.value.code) == (401, "SIGN_ERROR")


def test_answer_not_signed_by_the_platform_is_refused(fake, receiver, new_no):
    config = WeChatPayConfig.from_env(fake.settings, notify_url=receiver.url, public_key_pem=_pem_public_key())
    client = WeChatPay(config)
    out_trade_no = new_no()

    with pytest.raises(WeChatPayError) as caught:
        client.create_jsapi_order(out_trade_no, "电费", 100, "o-payer-8")

    assert caught.value.code == "RESPONSE_SIGNATURE_INVALID"


def test_unreachable_gateway_raises_unavailable(fake, receiver, new_no):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = WeChatPayConfig.from_env(fake.settings, notify_url=receiver.url, api_base=f"http://127.0.0.1:{port}",
                                      timeout=2)

    with pytest.raises(WeChatPayUnavailable):
        WeChatPay(config).query_order(new_no())


def test_certificate_mode_downloads_and_caches_the_platform_certificate(fake, cert_pay, new_no, tmp_path):
    out_trade_no = new_no()

    cert_pay.create_jsapi_order(out_trade_no, "电费", 300, "o-payer-9")
    fake.pay(out_trade_no, notify=False)

    assert cert_pay.query_order(out_trade_no)["trade_state"] == "SUCCESS"
    cached = tmp_path / "platform_certs" / f"{fake.creds.platform_cert_serial}.pem"
    cached_cert = x509.load_pem_x509_certificate(cached.read_bytes())
    assert cached_cert.serial_number == fake.creds.platform_cert.serial_number


def test_config_repr_hides_keys(fake, receiver):
    config = WeChatPayConfig.from_env(fake.settings, notify_url=receiver.url)

    assert fake.creds.apiv3_key not in repr(config)
    assert "PRIVATE KEY" not in repr(config)
