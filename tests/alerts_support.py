"""Helpers for the finance alert tests (import the fixtures you use into the test module).

    from tests.alerts_support import robot, deliver_queued  # noqa: F401

`robot` points FINANCE_ALERT_WEBHOOK_URL at the fake WeChat's group robot (messages forgotten, limit
20 a minute); `deliver_queued()` runs the queued deliveries: a burst worker on the "notifications"
queue with REDIS_URL, the embedded mode's background threads otherwise.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.alerts import FinanceAlert
from tests.queue_support import deliver_queued  # noqa: F401  (used by the fixtures here and the tests)


@pytest.fixture
def robot(app, fake_wechat):
    """The fake's WeCom robot as the alert channel; yields the fake."""
    fake_wechat.clear_wecom()
    fake_wechat.configure_wecom(rate_limit_per_minute=20)
    previous = app.config.get("FINANCE_ALERT_WEBHOOK_URL")
    app.config["FINANCE_ALERT_WEBHOOK_URL"] = fake_wechat.wecom_webhook_url
    yield fake_wechat
    deliver_queued()
    app.config["FINANCE_ALERT_WEBHOOK_URL"] = previous
    fake_wechat.configure_wecom(rate_limit_per_minute=20)
    fake_wechat.clear_wecom()


def all_alerts() -> list[FinanceAlert]:
    """Every stored alert, oldest first (read fresh)."""
    db.session.expire_all()
    return list(db.session.scalars(sa.select(FinanceAlert).order_by(FinanceAlert.id)))
