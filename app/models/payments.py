"""Payments (WeChat Pay, cash, bank transfer), their allocation to bills, and refunds."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Money, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import PaymentMethod, PaymentStatus, RefundStatus


class Payment(Audited, MarketScoped, TimestampMixin, Model):
    """Money received from a merchant. transaction_id (WeChat's, or the bank's) is unique:
    a repeated notification can never record the same money twice."""

    __tablename__ = "payments"
    __table_args__ = (sa.CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id = sa.Column(sa.Integer, primary_key=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    zone_id = sa.Column(sa.ForeignKey("zones.id"), index=True)
    method = enum_column(PaymentMethod)
    status = enum_column(PaymentStatus, default=PaymentStatus.pending)
    amount_fen = sa.Column(Money, nullable=False)
    refunded_fen = sa.Column(Money, nullable=False, default=0)
    #: Our order number sent to WeChat Pay (JSAPI out_trade_no).
    out_trade_no = sa.Column(sa.String(32), unique=True)
    #: WeChat Pay's transaction_id, or the bank/cash reference for offline payments.
    transaction_id = sa.Column(sa.String(64), unique=True)
    payer_openid = sa.Column(sa.String(64))
    paid_dt = sa.Column(UTCDateTime)
    receipt_no = sa.Column(sa.String(40), unique=True)
    note = sa.Column(sa.String(300))
    recorded_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    merchant = relationship("Merchant")
    allocations = relationship("PaymentAllocation", back_populates="payment", cascade="all")
    refunds = relationship("Refund", back_populates="payment", order_by="Refund.id")

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class PaymentAllocation(MarketScoped, Model):
    """The part of a payment applied to one bill."""

    __tablename__ = "payment_allocations"
    __table_args__ = (sa.UniqueConstraint("payment_id", "bill_id"),)

    id = sa.Column(sa.Integer, primary_key=True)
    payment_id = sa.Column(sa.ForeignKey("payments.id", ondelete="CASCADE"), nullable=False)
    bill_id = sa.Column(sa.ForeignKey("bills.id"), nullable=False, index=True)
    amount_fen = sa.Column(Money, nullable=False)

    payment = relationship("Payment", back_populates="allocations")
    bill = relationship("Bill")


class Refund(Audited, MarketScoped, TimestampMixin, Model):
    """A (partial) refund of a payment; out_refund_no is reused on retry."""

    __tablename__ = "refunds"
    __table_args__ = (sa.CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id = sa.Column(sa.Integer, primary_key=True)
    payment_id = sa.Column(sa.ForeignKey("payments.id"), nullable=False, index=True)
    out_refund_no = sa.Column(sa.String(64), nullable=False, unique=True)
    refund_id = sa.Column(sa.String(64))
    amount_fen = sa.Column(Money, nullable=False)
    status = enum_column(RefundStatus, default=RefundStatus.processing)
    reason = sa.Column(sa.String(200), nullable=False)
    succeeded_dt = sa.Column(UTCDateTime)
    created_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    payment = relationship("Payment", back_populates="refunds")
