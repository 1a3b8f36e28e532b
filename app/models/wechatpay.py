"""WeChat Pay (微信支付) orders, every notification received, and trade-bill reconciliation mismatches.

The rules are in app/services/wechat_payments.py and docs/wechat-pay.md. Money is integer fen.
"""
import sqlalchemy as sa
from flask_appbuilder import Model
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import relationship

from app.models.base import MarketScoped, Money, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import LabeledEnum
from app.utils.dates import now_utc


class PayOrderStatus(LabeledEnum):
    open = "open"
    paid = "paid"
    closed = "closed"

    @classmethod
    def _labels(cls):
        return {"open": _("Awaiting payment"), "paid": _("Order paid"), "closed": _("Closed")}


class NotificationVerdict(LabeledEnum):
    ok = "ok"
    duplicate = "duplicate"
    suspicious = "suspicious"
    rejected = "rejected"
    error = "error"

    @classmethod
    def _labels(cls):
        return {
            "ok": _("Accepted"),
            "duplicate": _("Duplicate"),
            "suspicious": _("Suspicious"),
            "rejected": _("Rejected"),
            "error": _("Error"),
        }


class NotificationChannel(LabeledEnum):
    notify = "notify"
    refund_notify = "refund_notify"
    query = "query"

    @classmethod
    def _labels(cls):
        return {"notify": _("Payment notification"), "refund_notify": _("Refund notification"),
                "query": _("Order query")}


class MismatchKind(LabeledEnum):
    missing_here = "missing_here"
    missing_at_wechat = "missing_at_wechat"
    amount_differs = "amount_differs"

    @classmethod
    def _labels(cls):
        return {
            "missing_here": _("Paid at WeChat, not recorded here"),
            "missing_at_wechat": _("Recorded here, not in the WeChat bill"),
            "amount_differs": _("Amount differs"),
        }


pay_order_bills = sa.Table(
    "pay_order_bills",
    Model.metadata,
    sa.Column("pay_order_id", sa.ForeignKey("pay_orders.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("bill_id", sa.ForeignKey("bills.id"), primary_key=True, index=True),
)


class PayOrder(MarketScoped, TimestampMixin, Model):
    """A JSAPI order sent to WeChat Pay for one or several bills of a merchant (支付订单)."""

    __tablename__ = "pay_orders"
    __table_args__ = (
        sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
        sa.Index("ix_pay_orders_status_created_dt", "status", "created_dt"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    #: Our order number at WeChat Pay (<= 32 characters).
    out_trade_no = sa.Column(sa.String(32), nullable=False, unique=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    zone_id = sa.Column(sa.ForeignKey("zones.id"), index=True)
    amount_fen = sa.Column(Money, nullable=False)
    description = sa.Column(sa.String(127), nullable=False)
    payer_openid = sa.Column(sa.String(64), nullable=False)
    prepay_id = sa.Column(sa.String(64))
    status = enum_column(PayOrderStatus, default=PayOrderStatus.open)
    #: After this moment (UTC) WeChat refuses to take the money; the reconciliation job closes the order.
    expires_dt = sa.Column(UTCDateTime, nullable=False)
    transaction_id = sa.Column(sa.String(64), unique=True)
    paid_dt = sa.Column(UTCDateTime)
    closed_dt = sa.Column(UTCDateTime)
    close_reason = sa.Column(sa.String(100))
    payment_id = sa.Column(sa.ForeignKey("payments.id"))
    #: Last time a notification for this order arrived (UTC), whatever its verdict.
    notified_dt = sa.Column(UTCDateTime)
    #: Last time the reconciliation job asked WeChat about this order (UTC).
    queried_dt = sa.Column(UTCDateTime)

    merchant = relationship("Merchant")
    zone = relationship("Zone")
    payment = relationship("Payment")
    bills = relationship("Bill", secondary=pay_order_bills, order_by="Bill.id")

    def __repr__(self):
        return self.out_trade_no

    @property
    def bill_ids(self) -> list[int]:
        return sorted(b.id for b in self.bills)

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class PayNotification(Model):
    """One notification (or order query answer) as received, with the verdict given to it.

    Every delivery is stored, rejected ones included; suspicious ones are shown to Finance in red.
    market_id is empty when the notification could not be tied to one of our orders.
    """

    __tablename__ = "pay_notifications"
    __table_args__ = (sa.Index("ix_pay_notifications_verdict_received_dt", "verdict", "received_dt"),)

    id = sa.Column(sa.Integer, primary_key=True)
    market_id = sa.Column(sa.ForeignKey("markets.id"), index=True)
    received_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc)
    channel = enum_column(NotificationChannel, default=NotificationChannel.notify)
    verdict = enum_column(NotificationVerdict)
    #: Stable key of why it was not accepted (bad_signature, amount_mismatch, unknown_order, ...).
    reason = sa.Column(sa.String(64))
    detail = sa.Column(sa.String(300))
    #: HTTP status we answered (None for order queries).
    http_status = sa.Column(sa.Integer)
    #: WeChat's notification id (the same on every retry).
    notification_id = sa.Column(sa.String(64), index=True)
    event_type = sa.Column(sa.String(40))
    #: Wechatpay-Serial, -Timestamp (Unix seconds as sent), -Nonce, -Signature-Type headers.
    header_serial = sa.Column(sa.String(64))
    header_timestamp = sa.Column(sa.String(20))
    header_nonce = sa.Column(sa.String(64))
    header_signature_type = sa.Column(sa.String(40))
    remote_addr = sa.Column(sa.String(64))
    out_trade_no = sa.Column(sa.String(32), index=True)
    transaction_id = sa.Column(sa.String(64))
    out_refund_no = sa.Column(sa.String(64))
    trade_state = sa.Column(sa.String(24))
    #: resource.amount.total (payments) or amount.refund (refunds), in fen.
    amount_fen = sa.Column(Money)
    #: resource.amount.payer_total (payments) or amount.payer_refund (refunds), in fen.
    payer_amount_fen = sa.Column(Money)
    currency = sa.Column(sa.String(8))
    #: The decrypted resource, without the payer's openid (JSON).
    resource = sa.Column(sa.JSON)
    pay_order_id = sa.Column(sa.ForeignKey("pay_orders.id"), index=True)
    payment_id = sa.Column(sa.ForeignKey("payments.id"))
    refund_id = sa.Column(sa.ForeignKey("refunds.id"))
    resolved_dt = sa.Column(UTCDateTime)
    resolved_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    market = relationship("Market")
    pay_order = relationship("PayOrder")
    payment = relationship("Payment")
    refund = relationship("Refund")
    resolved_by = relationship("User")

    def __repr__(self):
        return f"{self.event_type or self.channel} {self.out_trade_no or self.out_refund_no or ''} {self.verdict}"

    @property
    def is_suspicious(self) -> bool:
        return self.verdict == NotificationVerdict.suspicious


class TradeBillMismatch(TimestampMixin, Model):
    """A difference between WeChat's trade bill (交易账单) of one day and our records, for Finance."""

    __tablename__ = "trade_bill_mismatches"
    __table_args__ = (sa.UniqueConstraint("bill_date", "out_trade_no", "kind"),)

    id = sa.Column(sa.Integer, primary_key=True)
    market_id = sa.Column(sa.ForeignKey("markets.id"), index=True)
    #: The trade bill's day (Asia/Shanghai).
    bill_date = sa.Column(sa.Date, nullable=False, index=True)
    kind = enum_column(MismatchKind)
    out_trade_no = sa.Column(sa.String(32), nullable=False)
    transaction_id = sa.Column(sa.String(64))
    #: What WeChat's bill says, in fen (None when the bill has no such line).
    wechat_amount_fen = sa.Column(Money)
    #: What we recorded, in fen (None when we have no payment).
    local_amount_fen = sa.Column(Money)
    is_resolved = sa.Column(sa.Boolean, nullable=False, default=False)
    resolved_dt = sa.Column(UTCDateTime)
    resolved_by_id = sa.Column(sa.ForeignKey("ab_user.id"))
    note = sa.Column(sa.String(300))

    market = relationship("Market")
    resolved_by = relationship("User")

    def __repr__(self):
        return f"{self.bill_date} {self.out_trade_no} {self.kind}"
