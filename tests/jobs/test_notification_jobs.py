"""Merchant notification jobs on the "notifications" queue: delivery after the commit, backoff while
WeChat is unreachable, the periodic retry, and the cap on attempts."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.integrations.wechat import WeChatAPIError
from app.models.notifications import MerchantNotification, NotificationStatus
from app.services import notifications
from app.services import tickets as svc
from app.utils.dates import now_utc
from jobs.notifications import deliver_merchant_notification_job, retry_merchant_notifications_job
from tests.notifications_support import all_notifications, bind, deliver_queued, messages_to, subscribe  # noqa: F401
from tests.queue_support import run_notifications_job

DOWN = "http://127.0.0.1:9/"  # nothing listens on the discard port: WeChat is unreachable


def _accepted_ticket(market, merchant=None):
    merchant = merchant or market.merchants_a[0]
    ticket = svc.create_ticket(merchant, None, "repair", "卷帘门拉不下来")
    db.session.commit()
    svc.accept_ticket(ticket.id, None)
    db.session.commit()
    deliver_queued()
    return ticket


def _due_now():
    db.session.execute(sa.update(MerchantNotification).values(next_dt=now_utc() - timedelta(seconds=1)))
    db.session.commit()


def test_commit_queues_one_delivery(app, market, subscribe):
    user = bind(market.merchants_a[0])
    _accepted_ticket(market)

    [row] = all_notifications()
    assert row.status == NotificationStatus.sent
    assert run_notifications_job(deliver_merchant_notification_job, row.id) == "already_sent"
    [message] = messages_to(subscribe, user.openid)
    assert message["data"]["phrase3"] == {"value": "已受理"}


def test_unreachable_wechat_leaves_it_pending_then_the_retry_delivers_it_once(app, market, subscribe):
    user = bind(market.merchants_a[0])
    up = app.config["WECHAT_API_BASE"]
    app.config["WECHAT_API_BASE"] = DOWN
    _accepted_ticket(market)

    [row] = all_notifications()
    assert (row.status, row.attempts) == (NotificationStatus.pending, 1)
    assert row.last_error.startswith("无法连接微信") and row.next_dt > now_utc()
    assert run_notifications_job(retry_merchant_notifications_job) == {}  # still backing off
    assert messages_to(subscribe, user.openid) == []

    app.config["WECHAT_API_BASE"] = up
    _due_now()
    assert run_notifications_job(retry_merchant_notifications_job) == {"sent": 1}
    assert run_notifications_job(retry_merchant_notifications_job) == {}

    [row] = all_notifications()
    assert (row.status, row.attempts, row.last_error, row.next_dt) == (NotificationStatus.sent, 2, None, None)
    assert len(messages_to(subscribe, user.openid)) == 1


def test_retry_stops_at_the_first_outage(app, market, subscribe):
    bind(market.merchants_a[0])
    app.config["WECHAT_API_BASE"] = DOWN
    _accepted_ticket(market)
    _accepted_ticket(market)
    _due_now()

    assert run_notifications_job(retry_merchant_notifications_job) == {"unavailable": 1}
    assert [r.attempts for r in all_notifications()] == [2, 1]


def test_it_gives_up_after_six_attempts(app, market, subscribe):
    user = bind(market.merchants_a[0])
    app.config["WECHAT_API_BASE"] = DOWN
    _accepted_ticket(market)
    for _ in range(notifications.MAX_ATTEMPTS - 1):
        _due_now()
        assert run_notifications_job(retry_merchant_notifications_job) == {"unavailable": 1}

    [row] = all_notifications()
    assert (row.status, row.attempts, row.next_dt) == (NotificationStatus.failed, 6, None)
    assert run_notifications_job(retry_merchant_notifications_job) == {}
    assert notifications.deliver_notification(row.id) == "failed"
    assert messages_to(subscribe, user.openid) == []


class _Refusing:
    """A mini-program client whose WeChat answers one errcode."""

    def __init__(self, errcode):
        self.errcode = errcode

    def send_subscribe_message(self, openid, template_id, data, page=None):
        raise WeChatAPIError(self.errcode, "refused")


def test_quota_is_retried_and_other_errcodes_fail(app, market, subscribe):
    bind(market.merchants_a[0])
    app.config["WECHAT_API_BASE"] = DOWN
    _accepted_ticket(market)
    _accepted_ticket(market)
    quota, bad_data = (r.id for r in all_notifications())

    assert notifications.deliver_notification(quota, client=_Refusing(45011)) == "rate_limited"
    assert notifications.deliver_notification(bad_data, client=_Refusing(47003)) == "error:47003"
    db.session.commit()

    rows = {r.id: r for r in all_notifications()}
    assert rows[quota].status == NotificationStatus.pending and rows[quota].last_error.startswith("45011")
    assert rows[bad_data].status == NotificationStatus.failed and rows[bad_data].last_error.startswith("47003")
    assert notifications.pending_notifications(now=now_utc() + timedelta(hours=1)) == [quota]


def test_schedule_lists_the_retry():
    from jobs.schedule import SCHEDULE

    entries = {path: (queue, expression) for path, queue, expression, _ in SCHEDULE}
    assert entries["jobs.notifications.retry_merchant_notifications_job"] == ("notifications", "*/3 * * * *")
