"""Helpers for the merchant notification tests (import the fixtures you use into the test module).

    from tests.notifications_support import subscribe  # noqa: F401

`subscribe` configures the ticket progress template (the id the fake writes to wechat.env) on the
fake WeChat and forgets its recorded messages; `deliver_queued()` runs the queued deliveries: a burst
worker on the "notifications" queue with REDIS_URL, the embedded mode's background threads otherwise.
"""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.integrations.fake_wechat.wechat_api import TICKET_PROGRESS_TEMPLATE_ID
from app.models import MerchantBinding, WeChatUser
from app.models.notifications import MerchantNotification
from app.models.wechat_users import BindingMethod, BindingRole
from tests.queue_support import deliver_queued  # noqa: F401  (used by the fixtures here and the tests)


@pytest.fixture
def subscribe(app, fake_wechat):
    """The fake WeChat with WECHAT_TEMPLATE_TICKET_PROGRESS set; yields the fake."""
    fake_wechat.clear_messages()
    previous = {name: app.config.get(name) for name in ("WECHAT_TEMPLATE_TICKET_PROGRESS", "WECHAT_API_BASE")}
    app.config["WECHAT_TEMPLATE_TICKET_PROGRESS"] = TICKET_PROGRESS_TEMPLATE_ID
    yield fake_wechat
    deliver_queued()
    app.config.update(previous)
    fake_wechat.clear_messages()


def bind(merchant, openid: str | None = None, revoked: bool = False) -> WeChatUser:
    """A WeChat user bound to the merchant (openid unique per test run unless given); committed."""
    from app.utils.dates import now_utc

    user = WeChatUser(openid=openid or f"o-notify-{uuid.uuid4().hex[:12]}")
    db.session.add(user)
    db.session.add(MerchantBinding(wechat_user=user, merchant_id=merchant.id, market_id=merchant.market_id,
                                   role=BindingRole.owner, bound_via=BindingMethod.phone,
                                   revoked_dt=now_utc() if revoked else None))
    db.session.commit()
    return user


def all_notifications() -> list[MerchantNotification]:
    """Every stored notification, oldest first (read fresh)."""
    db.session.expire_all()
    return list(db.session.scalars(sa.select(MerchantNotification).order_by(MerchantNotification.id)))


def messages_to(fake, openid: str) -> list[dict]:
    """The subscribe messages the fake received for one user."""
    return [m for m in fake.messages() if m["touser"] == openid]
