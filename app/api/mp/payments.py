"""POST /payments (a WeChat Pay order for bills) and the WeChat Pay notification endpoints.

The notification endpoints answer WeChat, not the mini-program: 204 without a body when the
notification was received (accepted, a duplicate, or verified but held as suspicious for Finance),
401/400 with {"code": "FAIL", "message": ...} when it cannot be trusted or read (WeChat retries),
500 with the same body when we could not store it. See docs/wechat-pay.md.
"""
from __future__ import annotations

import logging

from flask import Response, current_app, g, jsonify, request

from app.api.mp import api_doc, json_body, merchant_required, mp_api, rate_limit
from app.api.schemas.payments import PaymentCreateSchema, PaymentOrderSchema, PaymentOrderStatusSchema
from app.extensions import db
from app.models.wechatpay import NotificationChannel
from app.services import wechat_payments

logger = logging.getLogger(__name__)


def _payment_limit() -> str:
    return current_app.config.get("MP_PAYMENT_RATE_LIMIT") or "10/minute"


def _payment_limit_key() -> str:
    user = getattr(g, "mp_user", None)
    return f"mp-payments:{user.id}" if user is not None else f"mp-payments-ip:{request.remote_addr}"


@mp_api.post("/payments")
@api_doc("Create (or reuse) a WeChat Pay order for unpaid bills", tags=["payments"], body=PaymentCreateSchema,
         response=PaymentOrderSchema, status=201, also=(200,), errors=(404, 409, 429, 502, 503),
         description="amount = the bills' outstanding total. Asking again for the same bills and amount "
                     "returns the open order (200, is_reused); a changed amount closes the old order and "
                     "opens a new one. 404 bill_not_found (not this merchant's), 409 bill_not_payable "
                     "(paid/void), 422 for an empty list. pay_params go to wx.requestPayment unchanged.")
@merchant_required
@rate_limit(_payment_limit, key_func=_payment_limit_key)
def create_payment():
    data = json_body(PaymentCreateSchema())
    order, created = wechat_payments.create_pay_order(g.merchant, g.mp_user.openid, data["bill_ids"])
    reused = not created
    params = wechat_payments.pay_params(order)
    body = PaymentOrderSchema().dump({
        "out_trade_no": order.out_trade_no, "amount_fen": order.amount_fen, "bill_ids": order.bill_ids,
        "status": order.status.value, "expires_dt": order.expires_dt, "is_reused": reused, "pay_params": params,
    })
    db.session.commit()
    return body, (200 if reused else 201)


def _status_limit_key() -> str:
    return f"mp-payment-status:{g.mp_user.id}"


@mp_api.get("/payments/<out_trade_no>")
@api_doc("Where a payment order stands, asking WeChat Pay if its notification is late", tags=["payments"],
         response=PaymentOrderStatusSchema, errors=(404, 429),
         description="Poll after wx.requestPayment succeeds: status paid once the money is booked. While the "
                     "order is open and WeChat's notification has not arrived, the server queries the order at "
                     "WeChat Pay (at most every 5 s) and books a payment it finds there. 404 order_not_found "
                     "for another merchant's order.")
@merchant_required
@rate_limit("60/minute", key_func=_status_limit_key)
def get_payment(out_trade_no: str):
    order = wechat_payments.confirm_pay_order(g.merchant, out_trade_no)
    body = PaymentOrderStatusSchema().dump({
        "out_trade_no": order.out_trade_no, "status": order.status.value, "amount_fen": order.amount_fen,
        "bill_ids": order.bill_ids, "paid_dt": order.paid_dt, "expires_dt": order.expires_dt,
    })
    db.session.commit()
    return body


def _notification(channel: NotificationChannel) -> Response:
    body = request.get_data(cache=True)
    try:
        outcome = wechat_payments.receive_notification(request.headers, body, channel,
                                                       remote_addr=request.remote_addr)
        db.session.commit()
    except Exception as exc:  # store what we can, answer 500 so that WeChat retries
        db.session.rollback()
        logger.exception("WeChat Pay notification failed")
        try:
            wechat_payments.record_failed_notification(channel, request.headers, request.remote_addr, exc)
            db.session.commit()
        except Exception:  # pragma: no cover - the database itself is down
            db.session.rollback()
        response = jsonify({"code": "FAIL", "message": "internal error"})
        response.status_code = 500
        return response
    if outcome.body is None:
        return Response(status=outcome.status)
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    return response


@mp_api.post("/wechatpay/notify")
def wechatpay_notify():
    """WeChat Pay's TRANSACTION.SUCCESS notifications (REFUND.* too, when no refund URL is configured)."""
    return _notification(NotificationChannel.notify)


@mp_api.post("/wechatpay/refund-notify")
def wechatpay_refund_notify():
    """WeChat Pay's REFUND.SUCCESS / ABNORMAL / CLOSED notifications."""
    return _notification(NotificationChannel.refund_notify)

