"""Merchant notifications (商户通知): one row per message to one recipient, e.g. a WeChat subscribe
message telling a merchant's bound user that their ticket moved on.

The rules are in app/services/notifications.py and docs/notifications.md. One row per
(wechat_user_id, dedupe_key): a replayed event never notifies twice.
"""
import sqlalchemy as sa
from flask_appbuilder import Model
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import relationship

from app.models.base import UTCDateTime, enum_column
from app.models.enums import LabeledEnum
from app.utils.dates import now_utc


class NotificationChannel(LabeledEnum):
    wechat = "wechat"
    sms = "sms"

    @classmethod
    def _labels(cls):
        return {"wechat": _("WeChat subscribe message"), "sms": _("SMS")}


class NotificationKind(LabeledEnum):
    ticket = "ticket"
    bill = "bill"
    overdue = "overdue"

    @classmethod
    def _labels(cls):
        return {"ticket": _("Ticket"), "bill": _("Bill"), "overdue": _("Overdue")}


class NotificationStatus(LabeledEnum):
    pending = "pending"
    sent = "sent"
    skipped = "skipped"
    failed = "failed"

    @classmethod
    def _labels(cls):
        return {"pending": _("Not sent yet"), "sent": _("Sent"), "skipped": _("Skipped"), "failed": _("Gave up")}


class MerchantNotification(Model):
    """A message to one WeChat user bound to a merchant, stored before it is sent and tracked until it is."""

    __tablename__ = "merchant_notifications"
    __table_args__ = (
        sa.UniqueConstraint("wechat_user_id", "dedupe_key"),
        sa.Index("ix_merchant_notifications_status_next_dt", "status", "next_dt"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    market_id = sa.Column(sa.ForeignKey("markets.id"), nullable=False, index=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    #: The recipient (one row per recipient).
    wechat_user_id = sa.Column(sa.ForeignKey("wechat_users.id", ondelete="CASCADE"), nullable=False, index=True)
    channel = enum_column(NotificationChannel, default=NotificationChannel.wechat)
    kind = enum_column(NotificationKind)
    #: Which message template (e.g. "ticket_progress"); the WeChat template id comes from the config.
    template_key = sa.Column(sa.String(40), nullable=False)
    #: What the message is about, stable across replays (e.g. "ticket:12:event:34").
    dedupe_key = sa.Column(sa.String(120), nullable=False)
    #: The template data as built when the row was stored ({"thing2": "水管漏水", ...}), sent as is.
    payload = sa.Column(sa.JSON, nullable=False)
    #: Mini-program page opened from the message (e.g. "pages/ticket/ticket?id=12").
    page = sa.Column(sa.String(200))
    status = enum_column(NotificationStatus, default=NotificationStatus.pending)
    attempts = sa.Column(sa.Integer, nullable=False, default=0)
    #: Last error or the reason it was skipped (errcode and errmsg, or the connection error).
    last_error = sa.Column(sa.String(300))
    #: Earliest moment (UTC) of the next attempt after a failure (backoff).
    next_dt = sa.Column(UTCDateTime)
    sent_dt = sa.Column(UTCDateTime)
    created_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc, index=True)

    market = relationship("Market")
    merchant = relationship("Merchant")
    wechat_user = relationship("WeChatUser")

    def __repr__(self):
        return f"{self.kind} {self.dedupe_key} → {self.wechat_user_id}"
