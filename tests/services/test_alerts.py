"""Finance alerts: one per cause, raised where WeChat Pay goes wrong, delivered to the WeCom robot once."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.alerts import AlertKind, AlertSeverity, DeliveryStatus, FinanceAlert
from app.models.audit import AuditLog
from app.models.enums import RefundStatus
from app.models.payments import Refund
from app.models.wechatpay import NotificationVerdict, PayNotification
from app.services import alerts, wechat_payments
from app.services.exceptions import NotFound
from app.utils.dates import now_utc, today_local
from tests.alerts_support import all_alerts, deliver_queued, robot  # noqa: F401
from tests.wechatpay_support import NOTIFY_PATH, live_server, make_bill, wxpay  # noqa: F401


def _order(merchant, amount_fen):
    bill = make_bill(merchant, amount_fen)
    order, _ = wechat_payments.create_pay_order(merchant, "o-alert", [bill.id])
    db.session.commit()
    return order


def _raise(cause="c-1"):
    """An alert committed while no channel is configured (so no delivery is queued: the test sends it)."""
    from flask import current_app

    url = current_app.config.get("FINANCE_ALERT_WEBHOOK_URL")
    current_app.config["FINANCE_ALERT_WEBHOOK_URL"] = ""
    try:
        alert, created = alerts.raise_alert(AlertKind.refund_failed, cause, "refunds", 1, "微信退款失败",
                                            "退款单号：R1\n退款金额：¥12.34（1234 分）",
                                            severity=AlertSeverity.critical)
        db.session.commit()
    finally:
        current_app.config["FINANCE_ALERT_WEBHOOK_URL"] = url
    return alert, created


def test_one_fen_short_notification_raises_one_alert_even_when_replayed(market, fake_wechat, wxpay):
    order = _order(market.merchants_a[0], 5000)

    first = fake_wechat.pay(order.out_trade_no, tamper="amount_short", repeat=3)
    again = fake_wechat.pay(order.out_trade_no, tamper="amount_short")

    assert first["status_code"] == again["status_code"] == 204
    db.session.expire_all()
    records = db.session.scalars(sa.select(PayNotification).order_by(PayNotification.id)).all()
    assert len(records) == 4 and all(r.verdict == NotificationVerdict.suspicious for r in records)
    [alert] = all_alerts()
    assert alert.kind == AlertKind.suspicious_notification and alert.severity == AlertSeverity.critical
    assert (alert.ref_type, alert.ref_id) == ("pay_notifications", records[0].id)
    assert alert.market_id == order.market_id and alert.link_path.startswith("/wechatpay/notifications/")
    assert "金额不符" in alert.title
    assert order.out_trade_no in alert.message and "¥49.99（4999 分）" in alert.message
    assert "¥50.00（5000 分）" in alert.message
    # no channel configured: kept for the page and the retry, nothing attempted
    assert alert.wecom_status == DeliveryStatus.pending and alert.wecom_attempts == 0
    assert db.session.scalar(sa.select(sa.func.count(AuditLog.id)).where(AuditLog.table_name == "finance_alerts")) == 1


def test_unknown_order_alert_has_no_market(market, fake_wechat, wxpay):
    order = _order(market.merchants_a[0], 1200)
    headers, body = fake_wechat.build_pay_notification(order.out_trade_no)
    db.session.delete(db.session.get(type(order), order.id))
    db.session.commit()

    outcome = wechat_payments.receive_notification(headers, body, wechat_payments.NotificationChannel.notify)
    db.session.commit()

    assert outcome.status == 204 and outcome.record.reason == "unknown_order"
    [alert] = all_alerts()
    assert alert.market_id is None and "未知订单" in alert.title and order.out_trade_no in alert.message


def test_alert_is_delivered_to_the_robot_after_the_commit(market, robot, wxpay):
    order = _order(market.merchants_a[0], 3000)

    result = robot.pay(order.out_trade_no, tamper="amount_short", repeat=2)
    assert result["status_code"] == 204
    deliver_queued()

    [alert] = all_alerts()
    assert alert.wecom_status == DeliveryStatus.sent and alert.wecom_attempts == 1 and alert.wecom_sent_dt
    [message] = robot.wecom_messages()
    assert message["msgtype"] == "markdown"
    assert order.out_trade_no in message["content"] and "¥29.99" in message["content"]
    assert "【财务告警】可疑的微信支付通知" in message["content"]

    # a later replay and a re-run of the delivery send nothing more
    robot.pay(order.out_trade_no, tamper="amount_short")
    deliver_queued()
    assert alerts.deliver_alert(alert.id) == "already_sent"
    db.session.commit()
    assert len(robot.wecom_messages()) == 1 and len(all_alerts()) == 1


def test_rate_limited_robot_leaves_the_alert_pending_and_a_retry_sends_it_once(market, robot):
    alert, _ = _raise()
    robot.configure_wecom(rate_limit_per_minute=0)  # every message answers 45009

    assert alerts.deliver_alert(alert.id) == "rate_limited"
    db.session.commit()

    alert = all_alerts()[0]
    assert alert.wecom_status == DeliveryStatus.pending and alert.wecom_attempts == 1
    assert alert.wecom_last_error.startswith("45009")
    assert alert.wecom_next_dt > now_utc()
    assert alerts.pending_alerts() == []  # backing off
    assert alerts.pending_alerts(now=now_utc() + timedelta(minutes=2)) == [alert.id]
    assert robot.wecom_messages() == []

    robot.configure_wecom(rate_limit_per_minute=20)
    assert alerts.deliver_alert(alert.id) == "sent"
    db.session.commit()
    assert alerts.deliver_alert(alert.id) == "already_sent"
    db.session.commit()

    alert = all_alerts()[0]
    assert alert.wecom_status == DeliveryStatus.sent and alert.wecom_attempts == 2
    assert [m["content"].count("R1") for m in robot.wecom_messages()] == [1]
    assert alerts.pending_alerts(now=now_utc() + timedelta(hours=2)) == []


def test_robot_down_records_the_error_without_the_key(app, market, robot):
    alert, _ = _raise()
    key = robot.wecom_key
    app.config["FINANCE_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:9/cgi-bin/webhook/send?key={key}"  # nothing listens

    assert alerts.deliver_alert(alert.id) == "unavailable"
    db.session.commit()

    alert = all_alerts()[0]
    assert alert.wecom_status == DeliveryStatus.pending and alert.wecom_last_error
    assert key not in alert.wecom_last_error


def test_wrong_key_is_an_error_and_gives_up_after_the_cap(app, market, robot, monkeypatch):
    monkeypatch.setattr(alerts, "MAX_ATTEMPTS", 2)
    alert, _ = _raise()
    app.config["FINANCE_ALERT_WEBHOOK_URL"] = robot.wecom_webhook_url.replace(robot.wecom_key, "not-the-key")

    later = now_utc()
    outcomes = []
    for _ in range(3):
        later += timedelta(hours=2)
        outcomes.append(alerts.deliver_alert(alert.id, now=later))
        db.session.commit()

    assert outcomes == ["error:93000", "error:93000", "gave_up"]
    alert = all_alerts()[0]
    assert alert.wecom_status == DeliveryStatus.failed and alert.wecom_attempts == 2
    assert alert.wecom_last_error.startswith("93000")
    assert alerts.pending_alerts(now=later + timedelta(hours=2)) == []


def test_mentions_send_a_text_message(app, market, robot):
    app.config["FINANCE_ALERT_MENTION_MOBILES"] = "13800001111, 13900002222"
    try:
        alert, _ = _raise()
        assert alerts.deliver_alert(alert.id) == "sent"
        db.session.commit()
    finally:
        app.config["FINANCE_ALERT_MENTION_MOBILES"] = ""
    [message] = robot.wecom_messages()
    assert message["msgtype"] == "text" and message["mentioned_mobile_list"] == ["13800001111", "13900002222"]
    assert message["content"].startswith("【财务告警】微信退款失败") and "¥12.34" in message["content"]


def test_settings_come_from_the_wechat_env_file(app, market, robot, tmp_path):
    alert, _ = _raise()
    env = tmp_path / "wechat.env"
    env.write_text(f"FINANCE_ALERT_WEBHOOK_URL={robot.wecom_webhook_url}\n", encoding="utf-8")
    previous = app.config.get("WECHAT_ENV_FILE")
    app.config.update(FINANCE_ALERT_WEBHOOK_URL="", WECHAT_ENV_FILE=str(env))
    try:
        assert alerts.channels_configured()
        assert alerts.deliver_alert(alert.id) == "sent"
        db.session.commit()
    finally:
        app.config["WECHAT_ENV_FILE"] = previous
    assert len(robot.wecom_messages()) == 1


def test_raise_alert_is_idempotent_and_acknowledge_once(market, staff):
    alert, created = _raise("same-cause")
    again, created_again = _raise("same-cause")
    assert created and not created_again and again.id == alert.id
    assert alerts.unacknowledged_count() == 1

    alerts.acknowledge_alert(alert.id, staff["finance"].id)
    db.session.commit()
    first_dt = all_alerts()[0].acknowledged_dt
    alerts.acknowledge_alert(alert.id, staff["admin"].id)
    db.session.commit()

    [alert] = all_alerts()
    assert alert.acknowledged_by_id == staff["finance"].id and alert.acknowledged_dt == first_dt
    assert alerts.unacknowledged_count() == 0
    with pytest.raises(NotFound):
        alerts.acknowledge_alert(alert.id + 100, None)


def test_new_trade_bill_mismatches_alert_once(market, fake_wechat, wxpay):
    lost = _order(market.merchants_a[0], 4321)
    fake_wechat.pay(lost.out_trade_no, notify=False)  # paid at WeChat, never recorded here

    first = wechat_payments.check_trade_bill(today_local())
    db.session.commit()
    second = wechat_payments.check_trade_bill(today_local())
    db.session.commit()

    # the fake's bill of today also lists orders paid by earlier tests (not in this database)
    assert first["new_mismatches"] >= 1 and second["new_mismatches"] == 0
    raised = all_alerts()
    assert len(raised) == first["new_mismatches"]
    [alert] = [a for a in raised if lost.out_trade_no in a.message]
    assert alert.kind == AlertKind.trade_bill_mismatch and alert.severity == AlertSeverity.critical
    assert alert.ref_type == "trade_bill_mismatches" and lost.out_trade_no in alert.message
    assert "¥43.21（4321 分）" in alert.message and "微信已收款，本系统未记录" in alert.message


def test_abnormal_refund_raises_one_refund_alert(market, fake_wechat, wxpay, live_server):
    order = _order(market.merchants_a[0], 6000)
    fake_wechat.pay(order.out_trade_no)
    db.session.expire_all()
    payment_id = db.session.scalar(sa.text("SELECT id FROM payments WHERE out_trade_no = :no"),
                                   {"no": order.out_trade_no})
    refund = wechat_payments.request_refund(payment_id, 6000, "全额退款")
    db.session.commit()
    wechat_payments.submit_refund(refund.id)
    db.session.commit()

    for _ in range(2):
        result = fake_wechat.notify_refund(refund.out_refund_no, status="ABNORMAL",
                                           notify_url=live_server + NOTIFY_PATH)
        assert result["status_code"] == 204

    db.session.expire_all()
    assert db.session.get(Refund, refund.id).status == RefundStatus.failed
    [alert] = all_alerts()
    assert alert.kind == AlertKind.refund_failed and (alert.ref_type, alert.ref_id) == ("refunds", refund.id)
    assert refund.out_refund_no in alert.message and "¥60.00" in alert.message and "ABNORMAL" in alert.message


def test_refund_refused_by_wechat_raises_a_refund_alert(market, fake_wechat, wxpay):
    from app.models.enums import PaymentMethod
    from app.services.payments import record_payment

    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 2000)
    payment = record_payment(merchant.market_id, merchant.id, [bill.id], 2000, PaymentMethod.wechat,
                             "4200000000000000000000000001", now_utc(), out_trade_no="PNOTKNOWNATWECHAT01")
    refund = wechat_payments.request_refund(payment.id, 500, "多收")
    db.session.commit()

    wechat_payments.submit_refund(refund.id)  # WeChat answers 404 RESOURCE_NOT_EXISTS
    db.session.commit()

    db.session.expire_all()
    assert db.session.get(Refund, refund.id).status == RefundStatus.failed
    [alert] = all_alerts()
    assert alert.kind == AlertKind.refund_failed and "RESOURCE_NOT_EXISTS" in alert.message
    assert "¥5.00（500 分）" in alert.message and alert.link_path == "/wechatpay/refunds/"


def test_nothing_is_queued_when_the_transaction_rolls_back(market, robot):
    alerts.raise_alert(AlertKind.refund_failed, "rolled-back", "refunds", 1, "微信退款失败", "退款单号：R9")
    db.session.rollback()
    db.session.commit()
    deliver_queued()

    assert all_alerts() == [] and robot.wecom_messages() == []
    assert db.session.scalar(sa.select(sa.func.count(FinanceAlert.id))) == 0
