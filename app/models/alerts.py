"""Finance alerts (财务告警): causes Finance must be told about, pushed to a WeCom group robot.

The rules are in app/services/alerts.py and docs/alerts.md. One alert per cause (kind, cause_key).
"""
import sqlalchemy as sa
from flask_appbuilder import Model
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import relationship

from app.models.base import UTCDateTime, enum_column
from app.models.enums import LabeledEnum
from app.utils.dates import now_utc


class AlertKind(LabeledEnum):
    suspicious_notification = "suspicious_notification"
    trade_bill_mismatch = "trade_bill_mismatch"
    refund_failed = "refund_failed"

    @classmethod
    def _labels(cls):
        return {
            "suspicious_notification": _("Suspicious pay notification"),
            "trade_bill_mismatch": _("Trade bill mismatch"),
            "refund_failed": _("Refund failed"),
        }


class AlertSeverity(LabeledEnum):
    critical = "critical"
    warning = "warning"

    @classmethod
    def _labels(cls):
        return {"critical": _("Critical"), "warning": _("Warning")}


class DeliveryStatus(LabeledEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"

    @classmethod
    def _labels(cls):
        return {"pending": _("Not sent yet"), "sent": _("Sent"), "failed": _("Gave up")}


class FinanceAlert(Model):
    """Something Finance must look at (a suspicious notification, a trade-bill mismatch, a failed refund).

    market_id is empty when the cause could not be tied to a market (e.g. a notification for an
    unknown order). Delivery is tracked per channel: the wecom_* columns are the WeCom group robot.
    """

    __tablename__ = "finance_alerts"
    __table_args__ = (
        sa.UniqueConstraint("kind", "cause_key"),
        sa.Index("ix_finance_alerts_wecom_status_next_dt", "wecom_status", "wecom_next_dt"),
        sa.CheckConstraint("wecom_attempts >= 0", name="wecom_attempts_not_negative"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    market_id = sa.Column(sa.ForeignKey("markets.id"), index=True)
    kind = enum_column(AlertKind)
    severity = enum_column(AlertSeverity, default=AlertSeverity.warning)
    #: What the alert is about, stable across replays of the same cause (e.g. order, transaction, reason).
    cause_key = sa.Column(sa.String(160), nullable=False)
    #: Chinese text as built when the alert was raised (sent as is).
    title = sa.Column(sa.String(120), nullable=False)
    message = sa.Column(sa.Text, nullable=False)
    #: The row behind the alert: pay_notifications, trade_bill_mismatches or refunds, and its id.
    ref_type = sa.Column(sa.String(40), nullable=False)
    ref_id = sa.Column(sa.Integer, nullable=False)
    #: Back-office path of the page showing the cause (e.g. /wechatpay/notifications/?verdict=suspicious).
    link_path = sa.Column(sa.String(200))
    created_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc, index=True)
    acknowledged_dt = sa.Column(UTCDateTime)
    acknowledged_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    wecom_status = enum_column(DeliveryStatus, default=DeliveryStatus.pending)
    wecom_attempts = sa.Column(sa.Integer, nullable=False, default=0)
    #: Last error (errcode and errmsg, or the connection error); never holds the webhook key.
    wecom_last_error = sa.Column(sa.String(300))
    wecom_last_attempt_dt = sa.Column(UTCDateTime)
    #: Earliest moment (UTC) of the next attempt after a failure (backoff).
    wecom_next_dt = sa.Column(UTCDateTime)
    wecom_sent_dt = sa.Column(UTCDateTime)

    market = relationship("Market")
    acknowledged_by = relationship("User")

    def __repr__(self):
        return f"{self.kind} {self.title}"

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_dt is not None
