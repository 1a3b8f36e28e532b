"""Trade bill download against the fake: the CSV read back, the SHA1 check, date limits."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.integrations.fake_wechat.protocol import now_cst
from app.integrations.wechatpay import WeChatPayError, parse_trade_bill, yuan_to_fen


@pytest.fixture
def clean_fake(fake):
    """Start from no orders, so the bill's summary covers this test only."""
    fake.reset()
    yield fake
    fake.reset()


def test_trade_bill_lists_payments_and_refunds_of_the_day(clean_fake, pay, new_no):
    first, second, refund_no = new_no(), new_no(), new_no("R")
    pay.create_jsapi_order(first, "A区12号 电费", 12345, "o-payer-1")
    pay.create_jsapi_order(second, "B区3号 管理费", 50000, "o-payer-2")
    pay.create_jsapi_order(new_no(), "unpaid: not in the bill", 999, "o-payer-3")
    clean_fake.pay(first, notify=False)
    clean_fake.pay(second, notify=False)
    pay.refund(refund_no, second, 20000, 50000)

    text = pay.download_trade_bill(now_cst().date())

    rows, summary = parse_trade_bill(text)
    payments = {r["商户订单号"]: r for r in rows if r["交易状态"] == "SUCCESS"}
    refunds = [r for r in rows if r["交易状态"] == "REFUND"]
    assert set(payments) == {first, second}
    assert yuan_to_fen(payments[first]["应结订单金额"]) == 12345
    assert payments[first]["商品名称"] == "A区12号 电费"
    assert payments[first]["微信订单号"] == pay.query_order(first)["transaction_id"]
    assert [(r["商户退款单号"], yuan_to_fen(r["退款金额"])) for r in refunds] == [(refund_no, 20000)]
    assert summary["总交易单数"] == "3"
    assert yuan_to_fen(summary["应结订单总金额"]) == 62345
    assert yuan_to_fen(summary["退款总金额"]) == 20000
    assert text.splitlines()[1].startswith("`")  # data lines keep WeChat's backtick prefix in the raw text


def test_bill_whose_hash_does_not_match_is_refused(clean_fake, pay):
    clean_fake.configure(corrupt_bill_hash=True)

    with pytest.raises(WeChatPayError) as caught:
        pay.download_trade_bill(now_cst().date())

    assert caught.value.code == "BILL_HASH_MISMATCH"


def test_empty_day_gives_an_empty_bill(clean_fake, pay):
    rows, summary = parse_trade_bill(pay.download_trade_bill(now_cst().date() - timedelta(days=3)))

    assert rows == []
    assert summary["总交易单数"] == "0"


def test_future_bill_date_is_refused(pay):
    with pytest.raises(WeChatPayError) as caught:
        pay.download_trade_bill(now_cst().date() + timedelta(days=1))

    assert (caught.value.status, caught.value.code) == (400, "INVALID_REQUEST")


def test_yuan_to_fen_reads_bill_amounts_exactly():
    assert yuan_to_fen("123.45") == 12345
    assert yuan_to_fen("-0.01") == -1
    assert yuan_to_fen("0.10") == 10
    with pytest.raises(ValueError):
        yuan_to_fen("0.001")
