"""WeChatPay refunds against the fake: partial, over-refund, idempotency, settlement notification."""
from __future__ import annotations

import pytest

from app.integrations.wechatpay import WeChatPayError


def test_partial_refund_is_processing_then_success(fake, pay, receiver, paid_order, new_no):
    out_refund_no = new_no("R")

    created = pay.refund(out_refund_no, paid_order, 300, 1000, reason="多收水费")
    assert created["status"] == "PROCESSING"
    assert created["amount"]["refund"] == 300 and created["amount"]["total"] == 1000
    assert pay.query_refund(out_refund_no)["status"] == "PROCESSING"

    delivery = fake.notify_refund(out_refund_no)

    assert delivery["status_code"] == 200  # the receiver verified it with parse_notification
    notification = pay.parse_notification(receiver.last()["headers"], receiver.last()["body"])
    assert notification["event_type"] == "REFUND.SUCCESS"
    assert notification["resource"]["out_refund_no"] == out_refund_no
    assert notification["resource"]["refund_status"] == "SUCCESS"
    assert notification["resource"]["amount"]["refund"] == 300
    settled = pay.query_refund(out_refund_no)
    assert settled["status"] == "SUCCESS" and settled["success_time"].endswith("+08:00")
    assert pay.query_order(paid_order)["trade_state"] == "REFUND"


def test_refund_beyond_what_is_left_is_refused(pay, paid_order, new_no):
    pay.refund(new_no("R"), paid_order, 300, 1000)

    with pytest.raises(WeChatPayError) as caught:
        pay.refund(new_no("R"), paid_order, 701, 1000)
    rest = pay.refund(new_no("R"), paid_order, 700, 1000)

    assert (caught.value.status, caught.value.code) == (400, "INVALID_REQUEST")
    assert rest["amount"]["refund"] == 700


def test_same_out_refund_no_is_idempotent(fake, pay, paid_order, new_no):
    out_refund_no = new_no("R")

    first = pay.refund(out_refund_no, paid_order, 400, 1000)
    second = pay.refund(out_refund_no, paid_order, 400, 1000)
    with pytest.raises(WeChatPayError) as caught:
        pay.refund(out_refund_no, paid_order, 500, 1000)

    assert second["refund_id"] == first["refund_id"]
    assert [r["out_refund_no"] for r in fake.refunds()].count(out_refund_no) == 1
    assert caught.value.code == "INVALID_REQUEST"
    # only 400 fen were taken: 600 are still refundable
    assert pay.refund(new_no("R"), paid_order, 600, 1000)["status"] == "PROCESSING"


def test_refund_of_unpaid_or_unknown_order_is_refused(pay, new_no):
    out_trade_no = new_no()
    pay.create_jsapi_order(out_trade_no, "电费", 1000, "o-payer-1")

    with pytest.raises(WeChatPayError) as unpaid:
        pay.refund(new_no("R"), out_trade_no, 100, 1000)
    with pytest.raises(WeChatPayError) as unknown:
        pay.refund(new_no("R"), new_no(), 100, 1000)

    assert unpaid.value.code == "INVALID_REQUEST"
    assert (unknown.value.status, unknown.value.code) == (404, "RESOURCE_NOT_EXISTS")


def test_refund_total_must_match_the_order(pay, paid_order, new_no):
    with pytest.raises(WeChatPayError) as caught:
        pay.refund(new_no("R"), paid_order, 100, 999)

    assert caught.value.code == "PARAM_ERROR"


def test_refund_amounts_are_checked_locally(pay, paid_order, new_no):
    with pytest.raises(TypeError):
        pay.refund(new_no("R"), paid_order, 3.0, 1000)
    with pytest.raises(ValueError):
        pay.refund(new_no("R"), paid_order, 1001, 1000)


def test_closed_refund_gives_the_money_back_to_refund(fake, pay, paid_order, new_no):
    out_refund_no = new_no("R")
    pay.refund(out_refund_no, paid_order, 1000, 1000)

    fake.notify_refund(out_refund_no, status="CLOSED", notify=False)

    assert pay.query_refund(out_refund_no)["status"] == "CLOSED"
    assert pay.refund(new_no("R"), paid_order, 1000, 1000)["status"] == "PROCESSING"


def test_unknown_refund_is_404(pay, new_no):
    with pytest.raises(WeChatPayError) as caught:
        pay.query_refund(new_no("R"))

    assert (caught.value.status, caught.value.code) == (404, "RESOURCE_NOT_EXISTS")
