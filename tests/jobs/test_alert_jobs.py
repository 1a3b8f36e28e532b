"""Finance alert jobs on the "notifications" queue: delivery after the commit and the periodic retry."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models.alerts import AlertKind, DeliveryStatus, FinanceAlert
from app.services import alerts
from app.utils.dates import now_utc
from jobs.alerts import deliver_alert_job, retry_finance_alerts_job
from tests.alerts_support import all_alerts, deliver_queued, robot  # noqa: F401
from tests.queue_support import run_notifications_job


def _raise_quietly(app, n=1):
    """Alerts committed while no channel is configured (nothing queued), as before a deployer sets one up."""
    url = app.config.get("FINANCE_ALERT_WEBHOOK_URL")
    app.config["FINANCE_ALERT_WEBHOOK_URL"] = ""
    try:
        ids = []
        for i in range(n):
            alert, _ = alerts.raise_alert(AlertKind.suspicious_notification, f"job-{i}", "pay_notifications", i + 1,
                                          f"可疑的微信支付通知 {i}", f"订单号：P-JOB-{i:03d}")
            ids.append(alert.id)
        db.session.commit()
    finally:
        app.config["FINANCE_ALERT_WEBHOOK_URL"] = url
    return ids


def test_commit_queues_one_delivery(app, market, robot):
    alert, _ = alerts.raise_alert(AlertKind.refund_failed, "job-commit", "refunds", 7, "微信退款失败", "退款单号：R-JOB-7")
    db.session.commit()
    deliver_queued()

    [alert] = all_alerts()
    assert alert.wecom_status == DeliveryStatus.sent
    assert [m["content"].count("R-JOB-7") for m in robot.wecom_messages()] == [1]
    assert run_notifications_job(deliver_alert_job, alert.id) == "already_sent"
    assert len(robot.wecom_messages()) == 1


def test_retry_job_sends_pending_alerts_once_after_an_outage(app, market, robot):
    [first, second] = _raise_quietly(app, 2)
    robot.configure_wecom(rate_limit_per_minute=1)  # the robot takes one message, then answers 45009

    counts = run_notifications_job(retry_finance_alerts_job)

    assert counts == {"sent": 1, "rate_limited": 1}
    rows = {a.id: a for a in all_alerts()}
    assert rows[first].wecom_status == DeliveryStatus.sent
    assert rows[second].wecom_status == DeliveryStatus.pending and rows[second].wecom_last_error.startswith("45009")
    assert run_notifications_job(retry_finance_alerts_job) == {}  # still backing off

    robot.clear_wecom()
    db.session.execute(sa.update(FinanceAlert).where(FinanceAlert.id == second)
                       .values(wecom_next_dt=now_utc() - timedelta(seconds=1)))
    db.session.commit()
    assert run_notifications_job(retry_finance_alerts_job) == {"sent": 1}
    assert run_notifications_job(retry_finance_alerts_job) == {}

    [message] = robot.wecom_messages()
    assert "P-JOB-001" in message["content"]
    assert all(a.wecom_status == DeliveryStatus.sent for a in all_alerts())


def test_retry_job_stops_when_the_robot_is_down(app, market, robot):
    _raise_quietly(app, 3)
    app.config["FINANCE_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:9/cgi-bin/webhook/send?key={robot.wecom_key}"

    assert run_notifications_job(retry_finance_alerts_job) == {"unavailable": 1}

    attempts = sorted(a.wecom_attempts for a in all_alerts())
    assert attempts == [0, 0, 1]


def test_retry_job_does_nothing_without_a_channel(app, market):
    _raise_quietly(app, 1)
    assert run_notifications_job(retry_finance_alerts_job) == {}
    [alert] = all_alerts()
    assert alert.wecom_status == DeliveryStatus.pending and alert.wecom_attempts == 0


def test_schedule_lists_the_retry():
    from jobs.schedule import SCHEDULE

    entries = {path: (queue, expression) for path, queue, expression, _ in SCHEDULE}
    assert entries["jobs.alerts.retry_finance_alerts_job"] == ("notifications", "*/3 * * * *")
