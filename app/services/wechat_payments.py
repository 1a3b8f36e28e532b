"""WeChat Pay (微信支付) for merchants' bills: JSAPI orders, notifications, reconciliation, refunds.

The rules (docs/wechat-pay.md):

* An order covers one or several open bills of one merchant for their outstanding total. Asking
  again for the same bills, amount and payer reuses the open order; any other open order that
  shares a bill is closed at WeChat first, so two live orders never cover the same bill.
* A notification is trusted only after the adapter verified it (signature with the key named by
  Wechatpay-Serial, timestamp within 5 minutes, AES-256-GCM decryption, mchid/appid) and this
  module checked it against our order: known out_trade_no, trade_state SUCCESS, amount.total and
  amount.payer_total equal to the order's amount, currency CNY. Only then record_payment marks the
  bills paid. Anything else leaves the bills as they are and is stored as a suspicious
  PayNotification with an audit entry and a finance alert (app/services/alerts.py) for Finance.
* Every notification and every query answer that says "paid" goes through apply_transaction().
  Locks are always taken bills first (in id order), then the order, so order creation, notifications
  and the reconciliation job never deadlock; repeated or concurrent notifications find the order
  paid with the same transaction_id and change nothing (record_payment is idempotent too).
* No call to WeChat is made while handling a notification.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
import logging
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.integrations.wechatpay import (
    NotificationRejected,
    WeChatPay,
    WeChatPayConfig,
    WeChatPayError,
    WeChatPayUnavailable,
    parse_trade_bill,
    yuan_to_fen,
)
from app.models import Bill, Merchant
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, PaymentMethod, PaymentStatus, RefundStatus
from app.models.payments import Payment, Refund
from app.models.wechatpay import (
    MismatchKind,
    NotificationChannel,
    NotificationVerdict,
    PayNotification,
    PayOrder,
    PayOrderStatus,
    TradeBillMismatch,
    pay_order_bills,
)
from app.services import alerts, audit
from app.services.exceptions import Conflict, DomainError, NotFound, ValidationFailed
from app.services.payments import outstanding_total, record_payment, record_refund, settle_refund
from app.utils.dates import local_day_bounds_utc, now_utc, to_local

#: Settings read from app.config (or WECHAT_ENV_FILE) to build the client.
CONFIG_KEYS = (
    "WECHAT_APPID", "WECHATPAY_MCHID", "WECHATPAY_API_BASE", "WECHATPAY_APIV3_KEY", "WECHATPAY_PRIVATE_KEY_PATH",
    "WECHATPAY_CERT_SERIAL", "WECHATPAY_PUBLIC_KEY_PATH", "WECHATPAY_PUBLIC_KEY_ID", "WECHATPAY_PLATFORM_CERT_DIR",
    "WECHATPAY_NOTIFY_URL", "WECHATPAY_REFUND_NOTIFY_URL",
)
logger = logging.getLogger(__name__)
#: NotificationRejected reasons meaning "not from WeChat" (401) and "unreadable" (400).
SIGNATURE_REASONS = {"missing_headers", "unsupported_signature_type", "unknown_serial", "bad_signature",
                     "stale_timestamp"}
MALFORMED_REASONS = {"bad_body", "decrypt_failed"}
#: Reasons raised after the signature verified: the notification is WeChat's but not for us.
VERIFIED_MISMATCH_REASONS = {"wrong_mchid", "wrong_appid"}
#: An open order is queried when no notification came this long after it was created.
RECONCILE_AFTER = timedelta(minutes=3)
#: A reused order must stay payable at least this long.
REUSE_MARGIN = timedelta(minutes=5)
RECONCILE_BATCH = 200
#: WeChat Pay's out_trade_no: 6-32 letters, digits, _ - | * (ours: P + 20 characters).
_OUT_TRADE_NO_RE = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
#: A merchant waiting for a payment's confirmation makes us ask WeChat about its order at most this often.
CONFIRM_QUERY_INTERVAL = timedelta(seconds=5)
#: ... and only once WeChat has had this long to send its notification.
CONFIRM_QUERY_AFTER = timedelta(seconds=3)


class WeChatPayNotConfigured(DomainError):
    code = "wechatpay_not_configured"
    http_status = 503


class WeChatPayDown(DomainError):
    code = "wechatpay_unavailable"
    http_status = 503


class WeChatPayRefused(DomainError):
    code = "wechatpay_error"
    http_status = 502


# --------------------------------------------------------------------------- the client


def _settings_from_app() -> dict[str, str]:
    """WECHAT_*/WECHATPAY_* values from the app config, completed from WECHAT_ENV_FILE when set."""
    cfg = current_app.config
    settings = {key: str(cfg.get(key) or "") for key in CONFIG_KEYS}
    path = cfg.get("WECHAT_ENV_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    name, sep, value = line.strip().partition("=")
                    if sep and name in settings and not settings[name]:
                        settings[name] = value.strip()
        except OSError:
            pass
    return {key: value for key, value in settings.items() if value}


def pay_client() -> WeChatPay:
    """The app's WeChat Pay client (built once from the config; tests may put one in app.extensions)."""
    client = current_app.extensions.get("wechatpay")
    if client is not None:
        return client
    settings = _settings_from_app()
    missing = [k for k in ("WECHAT_APPID", "WECHATPAY_MCHID", "WECHATPAY_APIV3_KEY", "WECHATPAY_PRIVATE_KEY_PATH",
                           "WECHATPAY_CERT_SERIAL") if k not in settings]
    if missing:
        raise WeChatPayNotConfigured("微信支付未配置：缺少 " + "、".join(missing))
    try:
        client = WeChatPay(WeChatPayConfig.from_env(settings))
    except (KeyError, ValueError, OSError) as exc:
        raise WeChatPayNotConfigured(f"微信支付配置有误：{exc}") from None
    current_app.extensions["wechatpay"] = client
    return client


def _call(func, *args, **kwargs):
    """Call WeChat Pay, turning its errors into domain errors (503 unreachable, 502 refused)."""
    try:
        return func(*args, **kwargs)
    except WeChatPayUnavailable as exc:
        raise WeChatPayDown(f"微信支付暂时无法连接，请稍后再试（{exc}）") from None
    except WeChatPayError as exc:
        raise WeChatPayRefused(f"微信支付拒绝了请求：{exc.code} {exc.message}", wechat_code=exc.code) from None


def _new_number(prefix: str) -> str:
    """PYYMMDDHHMMSS + 8 hex: 21 characters, sortable by time, unique by chance (and a unique index)."""
    return f"{prefix}{to_local(now_utc()):%y%m%d%H%M%S}{secrets.token_hex(4).upper()}"


def new_out_trade_no() -> str:
    """A fresh out_trade_no (21 characters of WeChat's allowed set)."""
    return _new_number("P")


def new_out_refund_no() -> str:
    """A fresh out_refund_no."""
    return _new_number("R")


# --------------------------------------------------------------------------- orders


#: The largest id an Integer primary key can hold (PostgreSQL integer).
MAX_ROW_ID = 2**31 - 1


def _lock_bills(ids) -> list[Bill]:
    """Lock bills in id order (the first lock every payment path takes) and read them fresh."""
    return list(db.session.scalars(
        sa.select(Bill).where(Bill.id.in_(sorted(ids))).order_by(Bill.id)
        .with_for_update(of=Bill).execution_options(populate_existing=True)
    ))


def _lock_order(order_id: int) -> PayOrder:
    """Lock a pay order (after its bills) and read it fresh."""
    return db.session.scalar(
        sa.select(PayOrder).where(PayOrder.id == order_id).with_for_update(of=PayOrder)
        .execution_options(populate_existing=True)
    )


def _order_description(merchant: Merchant, bills: list[Bill]) -> str:
    numbers = "、".join(b.number for b in bills[:3]) + (f"等{len(bills)}笔" if len(bills) > 3 else "")
    return f"{merchant.market.name}-账单 {numbers}"[:127]


def create_pay_order(merchant: Merchant, payer_openid: str, bill_ids,
                     client: WeChatPay | None = None) -> tuple[PayOrder, bool]:
    """Open a JSAPI order for a merchant's unpaid bills, or reuse the open one for the same bills and amount.

    Returns (order, created): created is False when an open order was reused."""
    try:
        ids = sorted({int(i) for i in bill_ids or ()})
    except (TypeError, ValueError):
        raise ValidationFailed("账单编号不正确", code="invalid_bill_ids") from None
    if not ids:
        raise ValidationFailed("请选择要支付的账单", code="no_bills")
    if not payer_openid:
        raise ValidationFailed("缺少付款人 openid", code="no_openid")
    if ids[0] < 1 or ids[-1] > MAX_ROW_ID:  # no such row; the database would refuse the number itself
        raise NotFound("账单不存在", code="bill_not_found")
    bills = _lock_bills(ids)
    if len(bills) != len(ids) or any(b.merchant_id != merchant.id or b.status == BillStatus.draft for b in bills):
        raise NotFound("账单不存在", code="bill_not_found")  # drafts are not shown to merchants either
    closed = [b.number for b in bills if b.status not in OPEN_BILL_STATUSES]
    if closed:
        raise Conflict(f"账单 {'、'.join(closed)} 已支付或已作废，无需再付", code="bill_not_payable")
    amount_fen = outstanding_total(ids)
    if amount_fen <= 0:
        raise Conflict("所选账单没有待付金额", code="nothing_owed")
    client = client or pay_client()
    now = now_utc()
    overlapping = list(db.session.scalars(
        sa.select(PayOrder).where(
            PayOrder.status == PayOrderStatus.open,
            PayOrder.id.in_(sa.select(pay_order_bills.c.pay_order_id).where(pay_order_bills.c.bill_id.in_(ids))),
        ).order_by(PayOrder.id).with_for_update(of=PayOrder).execution_options(populate_existing=True)
    ))
    reuse = None
    for order in overlapping:
        if (reuse is None and order.merchant_id == merchant.id and order.bill_ids == ids
                and order.amount_fen == amount_fen and order.payer_openid == payer_openid
                and order.prepay_id and order.expires_dt > now + REUSE_MARGIN and order.notified_dt is None):
            reuse = order
            continue
        close_pay_order(order, "superseded", client)
    if reuse is not None:
        return reuse, False
    ttl = timedelta(minutes=int(current_app.config.get("WECHATPAY_ORDER_TTL_MINUTES", 30)))
    order = PayOrder(
        market_id=merchant.market_id, merchant_id=merchant.id, zone_id=merchant.zone_id or bills[0].zone_id,
        out_trade_no=new_out_trade_no(), amount_fen=amount_fen, description=_order_description(merchant, bills),
        payer_openid=payer_openid, status=PayOrderStatus.open, expires_dt=now + ttl, bills=bills,
    )
    db.session.add(order)
    db.session.flush()
    order.prepay_id = _call(client.create_jsapi_order, order.out_trade_no, order.description, amount_fen,
                            payer_openid, time_expire=order.expires_dt, attach=f"merchant={merchant.id}")
    db.session.flush()
    return order, True


def pay_params(order: PayOrder, client: WeChatPay | None = None) -> dict[str, str]:
    """The wx.requestPayment parameters (freshly signed) for an open order."""
    if order.status != PayOrderStatus.open or not order.prepay_id:
        raise Conflict("该支付订单已关闭", code="order_closed")
    return (client or pay_client()).jsapi_pay_params(order.prepay_id)


def close_pay_order(order: PayOrder, reason: str, client: WeChatPay | None = None) -> None:
    """Close an unpaid order at WeChat and here (a paid one answers ORDERPAID: 409, wait for its notification)."""
    if order.status != PayOrderStatus.open:
        return
    client = client or pay_client()
    try:
        client.close_order(order.out_trade_no)
    except WeChatPayError as exc:
        if exc.code == "ORDERPAID":
            raise Conflict("该账单的上一笔支付刚刚完成，请稍后刷新账单", code="payment_in_progress") from None
        if exc.code not in ("ORDER_NOT_EXIST", "ORDER_CLOSED", "ORDERCLOSED"):
            raise WeChatPayRefused(f"微信支付拒绝关闭订单：{exc.code} {exc.message}") from None
    except WeChatPayUnavailable as exc:
        raise WeChatPayDown(f"微信支付暂时无法连接，请稍后再试（{exc}）") from None
    order.status = PayOrderStatus.closed
    order.closed_dt = now_utc()
    order.close_reason = reason
    db.session.flush()


# --------------------------------------------------------------------------- notifications


@dataclass
class Outcome:
    """What a notification led to: the stored row and the HTTP answer for WeChat."""

    record: PayNotification
    status: int

    @property
    def body(self) -> dict[str, str] | None:
        """None for 2xx, else {"code": "FAIL", "message": ...} as the spec asks."""
        if self.status < 300:
            return None
        return {"code": "FAIL", "message": self.record.reason or "rejected"}


def _headers_of(headers: Mapping[str, str]) -> dict[str, str]:
    found = {}
    for name, value in headers.items():
        key = name.lower().replace("_", "-")
        if key.startswith("http-"):
            key = key[5:]
        found[key] = value
    return found


def _new_record(channel: NotificationChannel, headers: Mapping[str, str] | None, remote_addr: str | None):
    found = _headers_of(headers or {})
    return PayNotification(
        channel=channel,
        received_dt=now_utc(),
        header_serial=(found.get("wechatpay-serial") or "")[:64] or None,
        header_timestamp=(found.get("wechatpay-timestamp") or "")[:20] or None,
        header_nonce=(found.get("wechatpay-nonce") or "")[:64] or None,
        header_signature_type=(found.get("wechatpay-signature-type") or "")[:40] or None,
        remote_addr=(remote_addr or "")[:64] or None,
    )


def _int_or_none(value) -> int | None:
    return value if type(value) is int else None


def _summary(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource without the payer's openid (kept out of logs and Finance pages)."""
    kept = {k: v for k, v in resource.items() if k != "payer"}
    return kept


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else None


def _suspicious(record: PayNotification, reason: str, detail: str = "") -> None:
    """Mark a notification suspicious and write the audit entry Finance sees."""
    record.verdict = NotificationVerdict.suspicious
    record.reason = reason
    record.detail = detail[:300] or None
    audit.record_bulk(
        db.session, record.market_id, "pay_notifications",
        f"可疑的微信支付通知：{reason} 订单 {record.out_trade_no or record.out_refund_no or '-'} "
        f"金额 {record.amount_fen if record.amount_fen is not None else '-'} 分",
        after={"reason": reason, "detail": detail[:200], "out_trade_no": record.out_trade_no,
               "transaction_id": record.transaction_id, "notification_id": record.notification_id},
        reason=reason,
    )
    alerts.alert_suspicious_notification(record)


def receive_notification(headers: Mapping[str, str], body: bytes, channel: NotificationChannel,
                         remote_addr: str | None = None, client: WeChatPay | None = None) -> Outcome:
    """Verify, check and apply one notification from WeChat Pay; store it with its verdict."""
    client = client or pay_client()
    record = _new_record(channel, headers, remote_addr)  # added to the session once it has a verdict
    try:
        parsed = client.parse_notification(headers, body)
    except NotificationRejected as exc:
        if exc.reason in VERIFIED_MISMATCH_REASONS:
            _suspicious(record, exc.reason, exc.detail)
            status = 204
        else:
            record.verdict = NotificationVerdict.rejected
            record.reason = exc.reason
            record.detail = exc.detail[:300] or None
            status = 401 if exc.reason in SIGNATURE_REASONS else 400
        record.http_status = status
        db.session.add(record)
        db.session.flush()
        return Outcome(record, status)
    record.notification_id = (parsed.get("id") or "")[:64] or None
    record.event_type = (parsed.get("event_type") or "")[:40] or None
    resource = parsed["resource"]
    event = record.event_type or ""
    if event.startswith("TRANSACTION."):
        apply_transaction(resource, record, client)
    elif event.startswith("REFUND."):
        apply_refund_result(resource, record)
    else:
        _fill_payment_fields(record, resource)
        _suspicious(record, "unexpected_event", event)
    record.http_status = 204
    db.session.add(record)
    db.session.flush()
    return Outcome(record, 204)


def record_failed_notification(channel: NotificationChannel, headers: Mapping[str, str], remote_addr: str | None,
                               error: Exception) -> PayNotification:
    """Store a notification we could not process (answered 500, so WeChat sends it again)."""
    record = _new_record(channel, headers, remote_addr)
    record.verdict, record.reason, record.http_status = NotificationVerdict.error, "internal_error", 500
    record.detail = f"{type(error).__name__}: {error}"[:300]
    db.session.add(record)
    db.session.flush()
    return record


def _fill_payment_fields(record: PayNotification, resource: Mapping[str, Any]) -> None:
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    record.out_trade_no = str(resource.get("out_trade_no") or "")[:32] or None
    record.transaction_id = str(resource.get("transaction_id") or "")[:64] or None
    record.trade_state = str(resource.get("trade_state") or resource.get("refund_status") or "")[:24] or None
    record.currency = str(amount.get("currency") or "")[:8] or None
    record.resource = _summary(resource)


def apply_transaction(resource: Mapping[str, Any], record: PayNotification, client: WeChatPay) -> None:
    """Check a verified transaction against our order and, if it matches, record the payment once."""
    _fill_payment_fields(record, resource)
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    record.amount_fen = _int_or_none(amount.get("total"))
    record.payer_amount_fen = _int_or_none(amount.get("payer_total"))
    config = client.config
    if resource.get("mchid") != config.mchid:
        return _suspicious(record, "wrong_mchid", str(resource.get("mchid")))
    if resource.get("appid") != config.appid:
        return _suspicious(record, "wrong_appid", str(resource.get("appid")))
    found = db.session.scalar(sa.select(PayOrder).where(PayOrder.out_trade_no == record.out_trade_no)) \
        if record.out_trade_no else None
    if found is None:
        return _suspicious(record, "unknown_order", f"out_trade_no {record.out_trade_no}")
    _lock_bills(found.bill_ids)
    order = _lock_order(found.id)
    record.market_id = order.market_id
    record.pay_order_id = order.id
    order.notified_dt = now_utc()
    if record.trade_state != "SUCCESS":
        return _suspicious(record, "not_success", f"trade_state {record.trade_state}")
    if not record.transaction_id:
        return _suspicious(record, "no_transaction_id")
    if order.status == PayOrderStatus.paid:
        if order.transaction_id == record.transaction_id:
            record.verdict = NotificationVerdict.duplicate
            record.payment_id = order.payment_id
            return None
        return _suspicious(record, "second_transaction",
                           f"order already paid by {order.transaction_id}, now {record.transaction_id}")
    if record.amount_fen != order.amount_fen:
        return _suspicious(record, "amount_mismatch",
                           f"amount.total {record.amount_fen} != order {order.amount_fen}")
    if record.payer_amount_fen is not None and record.payer_amount_fen != order.amount_fen:
        return _suspicious(record, "amount_mismatch",
                           f"amount.payer_total {record.payer_amount_fen} != order {order.amount_fen}")
    if record.currency != "CNY" or amount.get("payer_currency", "CNY") != "CNY":
        return _suspicious(record, "currency_mismatch", f"currency {record.currency}/{amount.get('payer_currency')}")
    paid_dt = _parse_time(resource.get("success_time")) or now_utc()
    payer = resource.get("payer") if isinstance(resource.get("payer"), dict) else {}
    was_closed = order.status == PayOrderStatus.closed
    try:
        with db.session.begin_nested():
            payment = record_payment(
                order.market_id, order.merchant_id, order.bill_ids, order.amount_fen, PaymentMethod.wechat,
                record.transaction_id, paid_dt, out_trade_no=order.out_trade_no,
                payer_openid=payer.get("openid") or order.payer_openid, note=f"微信支付 {order.out_trade_no}",
            )
    except DomainError as exc:
        return _suspicious(record, f"not_recorded:{exc.code}"[:64], exc.message)
    order.status = PayOrderStatus.paid
    order.transaction_id = record.transaction_id
    order.paid_dt = paid_dt
    order.payment_id = payment.id
    record.payment_id = payment.id
    if was_closed:
        # The money is taken although we had closed the order: recorded, and Finance decides (refund).
        return _suspicious(record, "paid_closed_order", "paid after the order was closed here")
    record.verdict = NotificationVerdict.ok
    return None


# --------------------------------------------------------------------------- reconciliation


def orders_to_reconcile(now: datetime | None = None, limit: int = RECONCILE_BATCH) -> list[int]:
    """Ids of open orders without any notification some minutes after creation, oldest first."""
    now = now or now_utc()
    return list(db.session.scalars(
        sa.select(PayOrder.id).where(
            PayOrder.status == PayOrderStatus.open,
            PayOrder.notified_dt.is_(None),
            PayOrder.created_dt <= now - RECONCILE_AFTER,
        ).order_by(PayOrder.id).limit(limit)
    ))


def reconcile_pay_order(order_id: int, client: WeChatPay | None = None, now: datetime | None = None) -> str:
    """Ask WeChat about one silent order: apply it if paid (same checks), close it if expired; returns what happened."""
    client = client or pay_client()
    now = now or now_utc()
    order = db.session.get(PayOrder, order_id)
    if order is None or order.status != PayOrderStatus.open:
        return "skipped"
    order.queried_dt = now
    try:
        answer = client.query_order(order.out_trade_no)
    except WeChatPayError as exc:
        if exc.code == "ORDER_NOT_EXIST" and order.expires_dt <= now:
            order.status, order.closed_dt, order.close_reason = PayOrderStatus.closed, now, "not_at_wechat"
            db.session.flush()
            return "closed"
        return f"error:{exc.code}"
    except WeChatPayUnavailable:
        return "unavailable"
    state = answer.get("trade_state")
    if state in ("SUCCESS", "REFUND"):
        resource = dict(answer)
        resource["trade_state"] = "SUCCESS"  # REFUND: paid, then (partly) refunded
        record = _new_record(NotificationChannel.query, None, None)
        record.event_type = f"QUERY.{state}"
        apply_transaction(resource, record, client)
        db.session.add(record)
        db.session.flush()
        return str(record.verdict.value)
    if state == "CLOSED":
        order.status, order.closed_dt, order.close_reason = PayOrderStatus.closed, now, "closed_at_wechat"
        db.session.flush()
        return "closed"
    if order.expires_dt <= now:
        try:
            close_pay_order(order, "expired", client)
        except DomainError as exc:
            return f"error:{exc.code}"
        return "closed"
    db.session.flush()
    return "open"


def confirm_pay_order(merchant: Merchant, out_trade_no: str, client: WeChatPay | None = None,
                      now: datetime | None = None) -> PayOrder:
    """A merchant's order as WeChat Pay sees it: an open order with no notification yet is queried at
    WeChat (at most every few seconds) and a payment found there is applied exactly like a notification."""
    out_trade_no = str(out_trade_no)
    order = None
    if _OUT_TRADE_NO_RE.fullmatch(out_trade_no):  # anything else (NUL bytes, 100 characters) is no order of ours
        order = db.session.scalar(sa.select(PayOrder).where(PayOrder.out_trade_no == out_trade_no,
                                                            PayOrder.merchant_id == merchant.id))
    if order is None:
        raise NotFound("订单不存在", code="order_not_found")
    now = now or now_utc()
    if (order.status == PayOrderStatus.open and order.notified_dt is None
            and order.created_dt <= now - CONFIRM_QUERY_AFTER
            and (order.queried_dt is None or order.queried_dt <= now - CONFIRM_QUERY_INTERVAL)):
        outcome = reconcile_pay_order(order.id, client=client or pay_client(), now=now)
        logger.info("Order %s confirmed at WeChat on the merchant's request: %s", order.out_trade_no, outcome)
        db.session.refresh(order)
    return order


# --------------------------------------------------------------------------- trade bill


def check_trade_bill(bill_date: date, client: WeChatPay | None = None) -> dict[str, int]:
    """Compare one day's WeChat trade bill with our WeChat payments; store new mismatches for Finance."""
    client = client or pay_client()
    text = _call(client.download_trade_bill, bill_date)
    rows, _summary_row = parse_trade_bill(text)
    at_wechat: dict[str, tuple[str, int]] = {}
    for row in rows:
        if row.get("交易状态") != "SUCCESS":
            continue
        no = row.get("商户订单号", "")
        at_wechat[no] = (row.get("微信订单号", ""), yuan_to_fen(row.get("订单金额") or row.get("应结订单金额") or "0"))
    start, end = local_day_bounds_utc(bill_date)
    here: dict[str, tuple[str, int, int]] = {
        no: (tid, amount, market_id)
        for no, tid, amount, market_id in db.session.execute(
            sa.select(Payment.out_trade_no, Payment.transaction_id, Payment.amount_fen, Payment.market_id).where(
                Payment.method == PaymentMethod.wechat, Payment.status == PaymentStatus.succeeded,
                Payment.out_trade_no.is_not(None), Payment.paid_dt >= start, Payment.paid_dt < end,
            )
        )
    }
    elsewhere: dict[str, tuple[str, int, int]] = {}
    missing_nos = [no for no in at_wechat if no not in here]
    for chunk_start in range(0, len(missing_nos), 500):
        chunk = missing_nos[chunk_start:chunk_start + 500]
        for no, tid, amount, market_id in db.session.execute(
            sa.select(Payment.out_trade_no, Payment.transaction_id, Payment.amount_fen, Payment.market_id)
            .where(Payment.out_trade_no.in_(chunk), Payment.status == PaymentStatus.succeeded)
        ):
            elsewhere[no] = (tid, amount, market_id)
    order_markets = dict(db.session.execute(
        sa.select(PayOrder.out_trade_no, PayOrder.market_id).where(PayOrder.out_trade_no.in_(missing_nos[:5000]))
    ).all()) if missing_nos else {}
    found: list[dict[str, Any]] = []
    for no, (tid, wechat_fen) in at_wechat.items():
        local = here.get(no) or elsewhere.get(no)
        if local is None:
            found.append(dict(kind=MismatchKind.missing_here, out_trade_no=no, transaction_id=tid,
                              wechat_amount_fen=wechat_fen, local_amount_fen=None, market_id=order_markets.get(no)))
        elif local[1] != wechat_fen:
            found.append(dict(kind=MismatchKind.amount_differs, out_trade_no=no, transaction_id=tid,
                              wechat_amount_fen=wechat_fen, local_amount_fen=local[1], market_id=local[2]))
    for no, (tid, local_fen, market_id) in here.items():
        if no not in at_wechat:
            found.append(dict(kind=MismatchKind.missing_at_wechat, out_trade_no=no, transaction_id=tid,
                              wechat_amount_fen=None, local_amount_fen=local_fen, market_id=market_id))
    known = set(db.session.execute(
        sa.select(TradeBillMismatch.out_trade_no, TradeBillMismatch.kind).where(TradeBillMismatch.bill_date == bill_date)
    ).all())
    now = now_utc()
    new_rows = [dict(row, bill_date=bill_date, is_resolved=False, created_dt=now, updated_dt=now)
                for row in found if (row["out_trade_no"], row["kind"]) not in known]
    if new_rows:
        db.session.execute(sa.insert(TradeBillMismatch), new_rows)
        audit.record_bulk(db.session, None, "trade_bill_mismatches",
                          f"微信交易账单 {bill_date} 对账：新增 {len(new_rows)} 条差异",
                          after={"bill_date": bill_date.isoformat(), "mismatches": len(new_rows)})
        alerts.alert_trade_bill_mismatches(bill_date, [(row["out_trade_no"], row["kind"]) for row in new_rows])
    db.session.flush()
    return {"bill_rows": len(rows), "wechat_payments": len(at_wechat), "local_payments": len(here),
            "mismatches": len(found), "new_mismatches": len(new_rows)}


def resolve_mismatch(mismatch_id: int, user_id: int | None, note: str | None = None) -> TradeBillMismatch:
    """Mark a trade-bill mismatch as dealt with by Finance."""
    mismatch = db.session.get(TradeBillMismatch, mismatch_id)
    if mismatch is None:
        raise NotFound("差异记录不存在")
    if not mismatch.is_resolved:
        mismatch.is_resolved, mismatch.resolved_dt, mismatch.resolved_by_id = True, now_utc(), user_id
        mismatch.note = (note or "")[:300] or mismatch.note
        audit.record_bulk(db.session, mismatch.market_id, "trade_bill_mismatches",
                          f"交易账单差异已处理：{mismatch.bill_date} {mismatch.out_trade_no}", reason=note)
    db.session.flush()
    return mismatch


def resolve_notification(notification_id: int, user_id: int | None) -> PayNotification:
    """Mark a suspicious notification as looked at by Finance."""
    record = db.session.get(PayNotification, notification_id)
    if record is None:
        raise NotFound("通知记录不存在")
    if record.resolved_dt is None:
        record.resolved_dt, record.resolved_by_id = now_utc(), user_id
        audit.record_bulk(db.session, record.market_id, "pay_notifications",
                          f"可疑通知已处理：{record.out_trade_no or record.out_refund_no or record.id}")
    db.session.flush()
    return record


# --------------------------------------------------------------------------- refunds


def request_refund(payment_id: int, amount_fen: int, reason: str, user_id: int | None = None) -> Refund:
    """Create a (partial) refund of a WeChat payment with its own out_refund_no; never more than is left."""
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("收款记录不存在")
    if payment.method != PaymentMethod.wechat or not payment.out_trade_no:
        raise ValidationFailed("只有微信支付的收款可以在这里原路退款", code="not_wechat")
    return record_refund(payment.id, amount_fen, reason, out_refund_no=new_out_refund_no(), created_by=user_id)


def _settle(refund: Refund, wechat_status: str, refund_id: str | None, success_time: Any) -> bool:
    """Apply a final WeChat refund status through settle_refund; True when it changed something."""
    if wechat_status == "SUCCESS":
        target = RefundStatus.succeeded
    elif wechat_status in ("CLOSED", "ABNORMAL"):
        target = RefundStatus.failed
    else:
        if refund_id and not refund.refund_id:
            refund.refund_id = refund_id
        return False
    if refund.status == target:
        return False
    settle_refund(refund.out_refund_no, target, refund_id=refund_id, succeeded_dt=_parse_time(success_time))
    if target == RefundStatus.failed:
        alerts.alert_refund_failed(refund, f"退款状态 {wechat_status}")
    return True


def submit_refund(refund_id: int, client: WeChatPay | None = None) -> Refund:
    """Send a processing refund to WeChat (again, with the same out_refund_no) and keep its answer."""
    client = client or pay_client()
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        raise NotFound("退款记录不存在")
    if refund.status != RefundStatus.processing:
        raise Conflict(f"退款已是{refund.status.label}", code="refund_settled")
    payment = refund.payment
    try:
        answer = client.refund(refund.out_refund_no, payment.out_trade_no, refund.amount_fen, payment.amount_fen,
                               reason=refund.reason[:80])
    except WeChatPayUnavailable as exc:
        raise WeChatPayDown(f"微信支付暂时无法连接，退款未提交，可稍后重试（{exc}）") from None
    except WeChatPayError as exc:
        if exc.status and 400 <= exc.status < 500 and exc.code not in ("SYSTEM_ERROR", "FREQUENCY_LIMITED"):
            settle_refund(refund.out_refund_no, RefundStatus.failed)
            audit.record_change(db.session, refund, {"status": "processing"}, {"status": "failed"},
                                f"微信支付拒绝退款：{exc.code} {exc.message}"[:300])
            alerts.alert_refund_failed(refund, f"拒绝退款 {exc.code} {exc.message}")
            db.session.flush()
            return refund
        raise WeChatPayRefused(f"微信支付拒绝了退款：{exc.code} {exc.message}") from None
    _settle(refund, str(answer.get("status") or ""), answer.get("refund_id"), answer.get("success_time"))
    db.session.flush()
    return refund


def query_refund(refund_id: int, client: WeChatPay | None = None) -> Refund:
    """Ask WeChat for a refund's state and settle it when final."""
    client = client or pay_client()
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        raise NotFound("退款记录不存在")
    answer = _call(client.query_refund, refund.out_refund_no)
    if refund.status == RefundStatus.processing:
        _settle(refund, str(answer.get("status") or ""), answer.get("refund_id"), answer.get("success_time"))
    db.session.flush()
    return refund


def apply_refund_result(resource: Mapping[str, Any], record: PayNotification) -> None:
    """Check a verified refund notification against our refund and settle it (repeats change nothing)."""
    _fill_payment_fields(record, resource)
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    record.out_refund_no = str(resource.get("out_refund_no") or "")[:64] or None
    record.amount_fen = _int_or_none(amount.get("refund"))
    record.payer_amount_fen = _int_or_none(amount.get("payer_refund"))
    status = str(resource.get("refund_status") or "")
    refund = db.session.scalar(sa.select(Refund).where(Refund.out_refund_no == record.out_refund_no)) \
        if record.out_refund_no else None
    if refund is None:
        return _suspicious(record, "unknown_refund", f"out_refund_no {record.out_refund_no}")
    payment = refund.payment
    record.market_id, record.refund_id, record.payment_id = refund.market_id, refund.id, payment.id
    if record.out_trade_no != payment.out_trade_no:
        return _suspicious(record, "refund_order_mismatch", f"out_trade_no {record.out_trade_no}")
    if record.amount_fen != refund.amount_fen or _int_or_none(amount.get("total")) != payment.amount_fen:
        return _suspicious(record, "amount_mismatch",
                           f"refund {record.amount_fen}/{refund.amount_fen}, total {amount.get('total')}")
    try:
        with db.session.begin_nested():
            changed = _settle(refund, status, resource.get("refund_id"), resource.get("success_time"))
    except DomainError as exc:
        return _suspicious(record, f"not_settled:{exc.code}"[:64], exc.message)
    if status == "ABNORMAL":
        return _suspicious(record, "refund_abnormal", "退款异常：需在商户平台处理")
    record.verdict = NotificationVerdict.ok if changed else NotificationVerdict.duplicate
    return None

