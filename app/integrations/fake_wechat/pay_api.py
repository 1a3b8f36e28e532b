"""WeChat Pay API v3 endpoints: JSAPI orders, query, close, refunds, certificates, trade bills.

The server checks the merchant's Authorization signature before any of these run and signs every
answer afterwards (see server.py); handlers only deal with the business rules.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import secrets
import time
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from werkzeug.wrappers import Request, Response

from . import bill
from .protocol import aes_gcm_encrypt, now_cst, parse_rfc3339, rfc3339
from .state import Order, Refund
from .web import json_response, read_json

if TYPE_CHECKING:
    from .server import FakeWeChat

_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
BILL_URL_TTL_SECONDS = 300


def pay_error(status: int, code: str, message: str) -> Response:
    """A v3 error answer: {"code", "message"}."""
    return json_response({"code": code, "message": message}, status=status)


def _is_fen(value: Any) -> bool:
    """True for a positive integer amount in fen (JSON true/false and floats are refused)."""
    return type(value) is int and value > 0


def _check_mchid(fake: "FakeWeChat", mchid: Any) -> Response | None:
    """Refuse a body or query mchid that is not the account's."""
    if mchid != fake.creds.mchid:
        return pay_error(400, "MCH_NOT_EXISTS", "商户号不存在")
    return None


def create_jsapi_order(fake: "FakeWeChat", request: Request) -> Response:
    """POST /v3/pay/transactions/jsapi: create (or repeat) an order and return its prepay_id."""
    body = read_json(request)
    if not isinstance(body, dict):
        return pay_error(400, "PARAM_ERROR", "请求体不是合法的JSON")
    refused = _check_mchid(fake, body.get("mchid"))
    if refused:
        return refused
    if body.get("appid") != fake.creds.appid:
        return pay_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    description, out_trade_no = body.get("description"), body.get("out_trade_no")
    amount, payer = body.get("amount"), body.get("payer")
    notify_url, attach = body.get("notify_url"), body.get("attach", "")
    if not isinstance(description, str) or not 1 <= len(description) <= 127:
        return pay_error(400, "PARAM_ERROR", "description 参数错误")
    if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.match(out_trade_no):
        return pay_error(400, "PARAM_ERROR", "out_trade_no 参数错误")
    if not isinstance(notify_url, str) or not notify_url.startswith(("https://", "http://")) or len(notify_url) > 255:
        return pay_error(400, "PARAM_ERROR", "notify_url 参数错误")
    if not isinstance(amount, dict) or not _is_fen(amount.get("total")):
        return pay_error(400, "PARAM_ERROR", "amount.total 必须为大于0的整数(分)")
    if amount.get("currency", "CNY") != "CNY":
        return pay_error(400, "PARAM_ERROR", "amount.currency 仅支持CNY")
    if not isinstance(payer, dict) or not isinstance(payer.get("openid"), str) or not payer["openid"]:
        return pay_error(400, "PARAM_ERROR", "payer.openid 参数错误")
    if not isinstance(attach, str) or len(attach) > 128:
        return pay_error(400, "PARAM_ERROR", "attach 参数错误")
    time_expire = None
    if body.get("time_expire") is not None:
        try:
            time_expire = parse_rfc3339(body["time_expire"])
        except (TypeError, ValueError):
            return pay_error(400, "PARAM_ERROR", "time_expire 格式应为rfc3339")
    order = Order(
        out_trade_no=out_trade_no,
        appid=body["appid"],
        mchid=body["mchid"],
        description=description,
        total_fen=amount["total"],
        payer_openid=payer["openid"],
        notify_url=notify_url,
        attach=attach,
        time_expire=time_expire,
    )
    with fake.state.lock:
        existing = fake.state.orders.get(out_trade_no)
        if existing is not None:
            if existing.is_paid:
                return pay_error(403, "ORDERPAID", "该订单已支付")
            if existing.trade_state == "CLOSED":
                return pay_error(400, "ORDER_CLOSED", "订单已关闭")
            if not existing.same_request(order):
                return pay_error(400, "INVALID_REQUEST", "201 商户订单号重复")
            return json_response({"prepay_id": existing.prepay_id})
        fake.state.orders[out_trade_no] = order
    return json_response({"prepay_id": order.prepay_id})


def query_order(fake: "FakeWeChat", request: Request, out_trade_no: str) -> Response:
    """GET /v3/pay/transactions/out-trade-no/{no}?mchid=: the order's state and amounts."""
    refused = _check_mchid(fake, request.args.get("mchid"))
    if refused:
        return refused
    with fake.state.lock:
        order = fake.state.orders.get(out_trade_no)
        if order is None:
            return pay_error(404, "ORDER_NOT_EXIST", "订单不存在")
        return json_response(order.view())


def close_order(fake: "FakeWeChat", request: Request, out_trade_no: str) -> Response:
    """POST /v3/pay/transactions/out-trade-no/{no}/close: close an unpaid order (204)."""
    body = read_json(request)
    refused = _check_mchid(fake, body.get("mchid") if isinstance(body, dict) else None)
    if refused:
        return refused
    with fake.state.lock:
        order = fake.state.orders.get(out_trade_no)
        if order is None:
            return pay_error(404, "ORDER_NOT_EXIST", "订单不存在")
        if order.is_paid:
            return pay_error(403, "ORDERPAID", "该订单已支付")
        order.trade_state = "CLOSED"
    return Response(b"", status=204)


def create_refund(fake: "FakeWeChat", request: Request) -> Response:
    """POST /v3/refund/domestic/refunds: refund part or all of a paid order (idempotent by out_refund_no)."""
    body = read_json(request)
    if not isinstance(body, dict):
        return pay_error(400, "PARAM_ERROR", "请求体不是合法的JSON")
    out_refund_no, amount = body.get("out_refund_no"), body.get("amount")
    if not isinstance(out_refund_no, str) or not _OUT_REFUND_NO.match(out_refund_no):
        return pay_error(400, "PARAM_ERROR", "out_refund_no 参数错误")
    if not isinstance(amount, dict) or not _is_fen(amount.get("refund")) or not _is_fen(amount.get("total")):
        return pay_error(400, "PARAM_ERROR", "amount.refund/amount.total 必须为大于0的整数(分)")
    if amount.get("currency", "CNY") != "CNY":
        return pay_error(400, "PARAM_ERROR", "amount.currency 仅支持CNY")
    reason = body.get("reason") or ""
    with fake.state.lock:
        if body.get("transaction_id"):
            order = fake.state.order_by_transaction_id(body["transaction_id"])
        else:
            order = fake.state.orders.get(body.get("out_trade_no") or "")
        if order is None:
            return pay_error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        existing = fake.state.refunds.get(out_refund_no)
        if existing is not None:
            if existing.out_trade_no != order.out_trade_no or existing.refund_fen != amount["refund"]:
                return pay_error(400, "INVALID_REQUEST", "商户退款单号重复,且退款参数与原退款单不一致")
            return json_response(existing.view())
        if not order.is_paid:
            return pay_error(400, "INVALID_REQUEST", "订单未支付,不能退款")
        if amount["total"] != order.total_fen:
            return pay_error(400, "PARAM_ERROR", "订单金额与原订单金额不一致")
        if amount["refund"] > fake.state.refundable_fen(order):
            return pay_error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = Refund(
            out_refund_no=out_refund_no,
            out_trade_no=order.out_trade_no,
            transaction_id=order.transaction_id,
            refund_fen=amount["refund"],
            total_fen=order.total_fen,
            reason=reason,
            notify_url=body.get("notify_url") or "",
        )
        fake.state.refunds[out_refund_no] = refund
        order.trade_state = "REFUND"
        return json_response(refund.view())


def query_refund(fake: "FakeWeChat", request: Request, out_refund_no: str) -> Response:
    """GET /v3/refund/domestic/refunds/{out_refund_no}: the refund's state."""
    with fake.state.lock:
        refund = fake.state.refunds.get(out_refund_no)
        if refund is None:
            return pay_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return json_response(refund.view())


def certificates(fake: "FakeWeChat", request: Request) -> Response:
    """GET /v3/certificates: the platform certificate, AES-256-GCM encrypted with the API v3 key."""
    cert = fake.creds.platform_cert
    pem = cert.public_bytes(serialization.Encoding.PEM)
    entry = {
        "serial_no": fake.creds.platform_cert_serial,
        "effective_time": rfc3339(cert.not_valid_before_utc),
        "expire_time": rfc3339(cert.not_valid_after_utc),
        "encrypt_certificate": aes_gcm_encrypt(fake.creds.apiv3_key, pem, "certificate"),
    }
    return json_response({"data": [entry]})


def trade_bill(fake: "FakeWeChat", request: Request) -> Response:
    """GET /v3/bill/tradebill?bill_date=: build the day's bill and answer its download URL and SHA1."""
    try:
        bill_date = date.fromisoformat(request.args.get("bill_date", ""))
    except ValueError:
        return pay_error(400, "PARAM_ERROR", "bill_date 格式应为yyyy-MM-DD")
    today = now_cst().date()
    if bill_date > today:
        return pay_error(400, "INVALID_REQUEST", "账单日期不能晚于今天")
    if bill_date < today - timedelta(days=92):
        return pay_error(400, "INVALID_REQUEST", "仅支持三个月内的账单下载申请")
    bill_type = request.args.get("bill_type") or "ALL"
    tar_type = request.args.get("tar_type") or ""
    if bill_type not in ("ALL", "SUCCESS", "REFUND") or tar_type not in ("", "GZIP"):
        return pay_error(400, "PARAM_ERROR", "bill_type 或 tar_type 参数错误")
    with fake.state.lock:
        raw = bill.build_trade_bill(fake.creds.appid, fake.creds.mchid, fake.state, bill_date, bill_type)
        digest = hashlib.sha1(raw).hexdigest()
        if fake.corrupt_bill_hash:
            digest = hashlib.sha1(raw + b"tampered").hexdigest()
        token = secrets.token_urlsafe(24)
        content = gzip.compress(raw) if tar_type == "GZIP" else raw
        fake.state.bills[token] = (content, time.time() + BILL_URL_TTL_SECONDS)
    return json_response(
        {
            "hash_type": "SHA1",
            "hash_value": digest,
            "download_url": f"{request.host_url.rstrip('/')}/v3/billdownload/file?token={token}",
        }
    )


def download_bill(fake: "FakeWeChat", request: Request) -> Response:
    """GET /v3/billdownload/file?token=: the bill file itself (not signed, as in production)."""
    with fake.state.lock:
        entry = fake.state.bills.get(request.args.get("token", ""))
    if entry is None or entry[1] < time.time():
        return pay_error(400, "INVALID_REQUEST", "下载地址无效或已过期")
    return Response(entry[0], status=200, content_type="application/octet-stream")
