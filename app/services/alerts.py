"""Finance alerts (财务告警): raise one alert per cause, push it to the WeCom group robot, let Finance acknowledge it.

The rules (docs/alerts.md):

* raise_alert() is idempotent on the cause (kind, cause_key): a replayed notification, a trade bill
  checked twice or a refund settled twice never alerts twice. It flushes; the caller commits.
* Nothing is sent while the cause is handled (the notification endpoint answers WeChat within 5 s
  and makes no outbound call): the ids of new alerts wait in the session, and only after the commit
  a delivery job is queued (jobs/alerts.py; in the embedded mode a background thread).
* deliver_alert() locks the alert, sends it on each configured channel and records the outcome; an
  alert that was sent is never sent again. Failures stay pending with the error and a backoff; the
  periodic retry (jobs/schedule.py) tries again until MAX_ATTEMPTS, then the alert is marked failed.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Iterable

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from app.integrations.wecom import WeComAPIError, WeComRobot, WeComUnavailable
from app.models.alerts import AlertKind, AlertSeverity, DeliveryStatus, FinanceAlert
from app.services import audit
from app.services.exceptions import NotFound
from app.utils import after_commit
from app.utils.dates import format_local, now_utc
from app.utils.money import format_yuan

log = logging.getLogger(__name__)

#: Settings of the WeCom channel (app.config, completed from WECHAT_ENV_FILE like the WECHAT_* ones).
CONFIG_KEYS = ("FINANCE_ALERT_WEBHOOK_URL", "FINANCE_ALERT_MENTION_MOBILES")
#: Attempts per channel before an alert is marked failed (given up).
MAX_ATTEMPTS = 10
#: Backoff after the n-th failed attempt: BACKOFF_BASE * 2**(n-1), at most BACKOFF_MAX.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
#: The robot takes 20 messages a minute; after 45009 wait a full minute.
RATE_LIMIT_PAUSE = timedelta(minutes=1)
#: Alerts delivered per retry run (under the robot's 20 per minute).
RETRY_BATCH = 15
_SESSION_KEY = "finance_alerts_to_deliver"

NOTIFICATIONS_PATH = "/wechatpay/notifications/?verdict=suspicious"
MISMATCHES_PATH = "/wechatpay/reconciliation/"
REFUNDS_PATH = "/wechatpay/refunds/"
ALERTS_PATH = "/finance/alerts/"

#: Reasons of a suspicious notification, for people.
REASON_TEXT = {
    "amount_mismatch": "金额不符",
    "unknown_order": "未知订单",
    "second_transaction": "订单被再次支付",
    "paid_closed_order": "已关闭的订单被支付",
    "currency_mismatch": "币种不符",
    "not_success": "交易状态不是成功",
    "no_transaction_id": "缺少微信支付单号",
    "wrong_mchid": "商户号不符",
    "wrong_appid": "AppID 不符",
    "unexpected_event": "未知的通知类型",
    "unknown_refund": "未知退款单",
    "refund_order_mismatch": "退款与订单不符",
    "refund_abnormal": "退款异常",
}
#: Suspicious reasons that do not involve money that may have been taken wrongly.
WARNING_REASONS = {"wrong_mchid", "wrong_appid", "unexpected_event", "not_success", "no_transaction_id"}
MISMATCH_TEXT = {
    "missing_here": "微信已收款，本系统未记录",
    "missing_at_wechat": "本系统已记录，微信账单中没有",
    "amount_differs": "金额不一致",
}


# --------------------------------------------------------------------------- settings


def _settings() -> dict[str, str]:
    """FINANCE_ALERT_* values from the app config, completed from WECHAT_ENV_FILE when set."""
    cfg = current_app.config
    settings = {key: str(cfg.get(key) or "") for key in CONFIG_KEYS}
    path = cfg.get("WECHAT_ENV_FILE")
    if path and not all(settings.values()):
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    name, sep, value = line.strip().partition("=")
                    if sep and name in settings and not settings[name]:
                        settings[name] = value.strip()
        except OSError:
            pass
    return settings


def wecom_robot() -> WeComRobot | None:
    """The configured WeCom group robot, or None when FINANCE_ALERT_WEBHOOK_URL is not set."""
    url = _settings()["FINANCE_ALERT_WEBHOOK_URL"]
    if not url:
        return None
    try:
        return WeComRobot(url)
    except ValueError:
        log.error("FINANCE_ALERT_WEBHOOK_URL has no ?key=: finance alerts are not sent")
        return None


def channels_configured() -> bool:
    """True when at least one delivery channel is set up."""
    return bool(_settings()["FINANCE_ALERT_WEBHOOK_URL"])


def _mention_mobiles() -> list[str]:
    raw = _settings()["FINANCE_ALERT_MENTION_MOBILES"]
    return [m.strip() for m in raw.replace("，", ",").split(",") if m.strip()]


# --------------------------------------------------------------------------- raising


def raise_alert(kind: AlertKind, cause_key: str, ref_type: str, ref_id: int, title: str, message: str,
                severity: AlertSeverity = AlertSeverity.warning, market_id: int | None = None,
                link_path: str | None = None) -> tuple[FinanceAlert, bool]:
    """Record an alert for a cause once (the same cause returns the existing alert); returns (alert, created)."""
    cause_key = cause_key[:160]
    existing = db.session.scalar(sa.select(FinanceAlert).where(FinanceAlert.kind == kind,
                                                               FinanceAlert.cause_key == cause_key))
    if existing is not None:
        return existing, False
    alert = FinanceAlert(
        kind=kind, cause_key=cause_key, ref_type=ref_type, ref_id=ref_id, title=title[:120], message=message,
        severity=severity, market_id=market_id, link_path=link_path, created_dt=now_utc(),
        wecom_status=DeliveryStatus.pending, wecom_attempts=0,
    )
    # Two requests raising the same cause at the same moment: the unique key refuses the second one's
    # transaction (a notification then answers 500 and WeChat's retry finds the alert).
    db.session.add(alert)
    db.session.flush()
    audit.record_bulk(db.session, market_id, "finance_alerts", f"财务告警：{alert.title}",
                      after={"alert_id": alert.id, "kind": kind.value, "ref_type": ref_type, "ref_id": ref_id})
    after_commit.note(db.session, _SESSION_KEY, alert.id)
    db.session.flush()
    return alert, True


def _market_name(market_id: int | None) -> str:
    if market_id is None:
        return "未知（无法对应到本系统的订单）"
    from app.models import Market

    market = db.session.get(Market, market_id)
    return market.name if market is not None else str(market_id)


def _yuan(fen: int | None) -> str:
    return f"{format_yuan(fen)}（{fen} 分）" if isinstance(fen, int) else "-"


def alert_suspicious_notification(record) -> FinanceAlert | None:
    """Raise the alert for a verified notification held as suspicious (one per order, transaction and reason)."""
    from app.models.wechatpay import PayOrder

    reason = record.reason or "unknown"
    if reason == "refund_abnormal":
        return None  # the refund itself raised refund_failed when it was settled as failed
    if record.id is None:
        db.session.add(record)
        db.session.flush()
    ids = [record.out_trade_no, record.out_refund_no, record.transaction_id]
    cause = "|".join([reason, *(i or "" for i in ids)]) if any(ids) else \
        f"{reason}|{record.notification_id or f'row-{record.id}'}"
    label = REASON_TEXT.get(reason.split(":")[0], reason)
    if reason.startswith("not_recorded:"):
        label = "支付未能入账"
    elif reason.startswith("not_settled:"):
        label = "退款未能结算"
    order = db.session.get(PayOrder, record.pay_order_id) if record.pay_order_id else None
    lines = [f"市场：{_market_name(record.market_id)}"]
    if record.out_refund_no:
        lines.append(f"退款单号：{record.out_refund_no}")
    lines.append(f"订单号：{record.out_trade_no or '-'}")
    if record.transaction_id:
        lines.append(f"微信支付单号：{record.transaction_id}")
    lines.append(f"通知金额：{_yuan(record.amount_fen)}")
    if record.payer_amount_fen is not None and record.payer_amount_fen != record.amount_fen:
        lines.append(f"用户实付：{_yuan(record.payer_amount_fen)}")
    if order is not None:
        lines.append(f"订单金额：{_yuan(order.amount_fen)}")
    lines.append(f"原因：{label}（{reason}）" + (f"：{record.detail}" if record.detail else ""))
    lines.append(f"收到时间：{format_local(record.received_dt or now_utc(), '%Y-%m-%d %H:%M:%S')}")
    alert, _created = raise_alert(
        AlertKind.suspicious_notification, cause, "pay_notifications", record.id,
        f"可疑的微信支付通知：{label}", "\n".join(lines),
        severity=AlertSeverity.warning if reason in WARNING_REASONS else AlertSeverity.critical,
        market_id=record.market_id, link_path=NOTIFICATIONS_PATH,
    )
    return alert


def alert_trade_bill_mismatches(bill_date: date, keys: Iterable[tuple[str, object]]) -> list[FinanceAlert]:
    """Raise one alert per new trade-bill mismatch of a day (keys: (out_trade_no, kind) pairs)."""
    from app.models.wechatpay import TradeBillMismatch

    wanted = {(no, getattr(kind, "value", kind)) for no, kind in keys}
    if not wanted:
        return []
    rows = db.session.scalars(sa.select(TradeBillMismatch).where(TradeBillMismatch.bill_date == bill_date)
                              .order_by(TradeBillMismatch.id)).all()
    raised = []
    for row in rows:
        if (row.out_trade_no, row.kind.value) not in wanted:
            continue
        lines = [
            f"市场：{_market_name(row.market_id)}",
            f"账单日期：{row.bill_date.isoformat()}",
            f"订单号：{row.out_trade_no}",
            f"微信支付单号：{row.transaction_id or '-'}",
            f"差异：{MISMATCH_TEXT.get(row.kind.value, row.kind.value)}",
            f"微信账单金额：{_yuan(row.wechat_amount_fen)}",
            f"本系统金额：{_yuan(row.local_amount_fen)}",
        ]
        alert, _created = raise_alert(
            AlertKind.trade_bill_mismatch, f"{row.bill_date.isoformat()}|{row.out_trade_no}|{row.kind.value}",
            "trade_bill_mismatches", row.id, f"微信交易账单对账差异：{MISMATCH_TEXT.get(row.kind.value, '')}",
            "\n".join(lines),
            severity=AlertSeverity.critical if row.kind.value == "missing_here" else AlertSeverity.warning,
            market_id=row.market_id, link_path=MISMATCHES_PATH,
        )
        raised.append(alert)
    return raised


def alert_refund_failed(refund, detail: str = "") -> FinanceAlert:
    """Raise the alert for a refund WeChat refused, closed or marked abnormal (once per refund)."""
    payment = refund.payment
    lines = [
        f"市场：{_market_name(refund.market_id)}",
        f"退款单号：{refund.out_refund_no or refund.id}",
        f"订单号：{payment.out_trade_no if payment is not None else '-'}",
        f"退款金额：{_yuan(refund.amount_fen)}",
        f"退款原因：{refund.reason or '-'}",
    ]
    if detail:
        lines.append(f"微信支付：{detail}")
    lines.append("钱未退回商户，请在商户平台核实后重新发起退款或线下处理。")
    alert, _created = raise_alert(
        AlertKind.refund_failed, f"refund|{refund.id}", "refunds", refund.id,
        "微信退款失败", "\n".join(lines)[:2000], severity=AlertSeverity.critical,
        market_id=refund.market_id, link_path=REFUNDS_PATH,
    )
    return alert


# --------------------------------------------------------------------------- Finance's side


def acknowledge_alert(alert_id: int, user_id: int | None) -> FinanceAlert:
    """Mark an alert as seen by Finance (it leaves the banner); acknowledging twice changes nothing."""
    alert = db.session.get(FinanceAlert, alert_id)
    if alert is None:
        raise NotFound("告警不存在")
    if alert.acknowledged_dt is None:
        alert.acknowledged_dt, alert.acknowledged_by_id = now_utc(), user_id
        audit.record_bulk(db.session, alert.market_id, "finance_alerts", f"财务告警已确认：{alert.title}",
                          after={"alert_id": alert.id})
    db.session.flush()
    return alert


def unacknowledged_count() -> int:
    """How many alerts nobody has acknowledged yet."""
    return db.session.scalar(sa.select(sa.func.count(FinanceAlert.id))
                             .where(FinanceAlert.acknowledged_dt.is_(None))) or 0


# --------------------------------------------------------------------------- delivery


def _public_url(path: str | None) -> str:
    base = str(current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return f"{base}{path}" if base and path else ""


def render_markdown(alert: FinanceAlert) -> str:
    """The alert as a WeCom markdown message."""
    color = "warning" if alert.severity == AlertSeverity.critical else "comment"
    lines = [f'## <font color="{color}">【财务告警】{alert.title}</font>']
    lines += [f"> {line}" for line in alert.message.splitlines() if line.strip()]
    link = _public_url(alert.link_path)
    if link:
        lines.append(f"[查看详情]({link})　请在后台「财务告警」中确认")
    return "\n".join(lines)


def render_text(alert: FinanceAlert) -> str:
    """The alert as a plain text message (used when group members are @-mentioned)."""
    lines = [f"【财务告警】{alert.title}", *[line for line in alert.message.splitlines() if line.strip()]]
    link = _public_url(alert.link_path)
    if link:
        lines.append(f"详情：{link}")
    return "\n".join(lines)


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def deliver_alert(alert_id: int, robot: WeComRobot | None = None, now: datetime | None = None) -> str:
    """Send one alert on each configured channel and record the outcome; an alert already sent is not sent again.

    Returns "sent", "already_sent", "not_configured", "gave_up", "missing", "busy" (another worker
    is sending it), "rate_limited", "unavailable" or "error:<errcode>"."""
    alert = db.session.scalar(sa.select(FinanceAlert).where(FinanceAlert.id == alert_id)
                              .with_for_update().execution_options(populate_existing=True))
    if alert is None:
        return "missing"
    if alert.wecom_status == DeliveryStatus.sent:
        return "already_sent"
    if alert.wecom_status == DeliveryStatus.failed or alert.wecom_attempts >= MAX_ATTEMPTS:
        alert.wecom_status = DeliveryStatus.failed
        db.session.flush()
        return "gave_up"
    robot = robot or wecom_robot()
    if robot is None:
        return "not_configured"
    now = now or now_utc()
    # Claim this attempt with a conditional UPDATE: on a database without row locks (SQLite) a second
    # deliverer finds the attempt count moved on (or waits for the write lock) and sends nothing.
    seen = alert.wecom_attempts
    claimed = db.session.execute(
        sa.update(FinanceAlert).where(FinanceAlert.id == alert.id, FinanceAlert.wecom_status == DeliveryStatus.pending,
                                      FinanceAlert.wecom_attempts == seen)
        .values(wecom_attempts=seen + 1, wecom_last_attempt_dt=now).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return "busy"
    set_committed_value(alert, "wecom_attempts", seen + 1)
    set_committed_value(alert, "wecom_last_attempt_dt", now)
    mobiles = _mention_mobiles()
    try:
        if mobiles:
            robot.send_text(render_text(alert), mobiles)
        else:
            robot.send_markdown(render_markdown(alert))
    except WeComAPIError as exc:
        outcome = "rate_limited" if exc.is_rate_limited else f"error:{exc.errcode}"
        error = f"{exc.errcode} {exc.errmsg}"
        pause = RATE_LIMIT_PAUSE if exc.is_rate_limited else _backoff(alert.wecom_attempts)
    except WeComUnavailable as exc:
        outcome, error, pause = "unavailable", f"无法连接企业微信：{exc}", _backoff(alert.wecom_attempts)
    else:
        alert.wecom_status = DeliveryStatus.sent
        alert.wecom_sent_dt = now
        alert.wecom_last_error = None
        alert.wecom_next_dt = None
        db.session.flush()
        return "sent"
    alert.wecom_last_error = error[:300]
    if alert.wecom_attempts >= MAX_ATTEMPTS:
        alert.wecom_status = DeliveryStatus.failed
        alert.wecom_next_dt = None
        log.error("finance alert %s not delivered after %s attempts: %s", alert.id, alert.wecom_attempts, error)
    else:
        alert.wecom_next_dt = now + pause
        log.warning("finance alert %s not delivered (attempt %s): %s", alert.id, alert.wecom_attempts, error)
    db.session.flush()
    return outcome


def pending_alerts(now: datetime | None = None, limit: int = RETRY_BATCH) -> list[int]:
    """Ids of alerts not yet sent whose backoff has passed, oldest first."""
    now = now or now_utc()
    return list(db.session.scalars(
        sa.select(FinanceAlert.id).where(
            FinanceAlert.wecom_status == DeliveryStatus.pending,
            FinanceAlert.wecom_attempts < MAX_ATTEMPTS,
            sa.or_(FinanceAlert.wecom_next_dt.is_(None), FinanceAlert.wecom_next_dt <= now),
        ).order_by(FinanceAlert.id).limit(limit)
    ))


# --------------------------------------------------------------------------- after commit


def _queue_deliveries(ids: list[int]) -> None:
    """Queue the delivery of the alerts raised in the transaction that just committed."""
    from jobs.alerts import enqueue_deliveries

    enqueue_deliveries(ids)


after_commit.on_commit(_SESSION_KEY, _queue_deliveries, "finance alerts")
