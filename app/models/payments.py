"""Payments (WeChat Pay, cash, bank transfer), their allocation to bills, and refunds.

The rules (allocation order, idempotency, refunds) are in app/services/payments.py and
docs/payments.md. Invariant kept by the service: a bill's paid_fen equals the sum of its
allocations of succeeded payments minus the sum of its succeeded refund allocations.
"""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Money, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import PaymentMethod, PaymentStatus, RefundStatus


class Payment(Audited, MarketScoped, TimestampMixin, Model):
    """Money received from a merchant. transaction_id (WeChat's, or the bank's) is unique:
    a repeated notification can never record the same money twice."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
        sa.Index("ix_payments_market_paid_dt", "market_id", "paid_dt"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    zone_id = sa.Column(sa.ForeignKey("zones.id"), index=True)
    method = enum_column(PaymentMethod)
    status = enum_column(PaymentStatus, default=PaymentStatus.pending)
    amount_fen = sa.Column(Money, nullable=False)
    #: Sum of this payment's succeeded refunds, in fen.
    refunded_fen = sa.Column(Money, nullable=False, default=0)
    #: Our order number sent to WeChat Pay (JSAPI out_trade_no).
    out_trade_no = sa.Column(sa.String(32), unique=True)
    #: WeChat Pay's transaction_id, or the bank/cash reference for offline payments.
    transaction_id = sa.Column(sa.String(64), unique=True)
    payer_openid = sa.Column(sa.String(64))
    #: When the money was received (WeChat success_time, or the time Finance entered).
    paid_dt = sa.Column(UTCDateTime)
    receipt_no = sa.Column(sa.String(40), unique=True)
    note = sa.Column(sa.String(300))
    recorded_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    merchant = relationship("Merchant")
    zone = relationship("Zone")
    recorded_by = relationship("User")
    allocations = relationship(
        "PaymentAllocation", back_populates="payment", cascade="all", order_by="PaymentAllocation.id"
    )
    refunds = relationship("Refund", back_populates="payment", order_by="Refund.id")

    def __repr__(self):
        return self.receipt_no or self.transaction_id or self.out_trade_no or f"payment {self.id}"

    @property
    def allocated_fen(self) -> int:
        """Fen applied to bills."""
        return sum(a.amount_fen for a in self.allocations)

    @property
    def unallocated_fen(self) -> int:
        """Fen received but applied to no bill (a WeChat over-payment) and not refunded yet."""
        refunded_to_bills = sum(ra.amount_fen for r in self.refunds for ra in r.allocations
                                if r.status == RefundStatus.succeeded)
        surplus_refunded = self.refunded_fen - refunded_to_bills
        return self.amount_fen - self.allocated_fen - surplus_refunded

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

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.payment_id.in_(sa.select(Payment.id).where(Payment.zone_id.in_(zone_ids)))


class Refund(Audited, MarketScoped, TimestampMixin, Model):
    """A (partial) refund of a payment; out_refund_no is reused on retry."""

    __tablename__ = "refunds"
    __table_args__ = (
        sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
        sa.Index("ix_refunds_market_succeeded_dt", "market_id", "succeeded_dt"),
    )

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
    created_by = relationship("User")
    allocations = relationship("RefundAllocation", back_populates="refund", cascade="all",
                               order_by="RefundAllocation.id")

    def __repr__(self):
        return self.out_refund_no

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.payment_id.in_(sa.select(Payment.id).where(Payment.zone_id.in_(zone_ids)))


class RefundAllocation(MarketScoped, Model):
    """The part of a succeeded refund taken back from one bill (reduces the bill's paid_fen)."""

    __tablename__ = "refund_allocations"
    __table_args__ = (sa.UniqueConstraint("refund_id", "bill_id"),)

    id = sa.Column(sa.Integer, primary_key=True)
    refund_id = sa.Column(sa.ForeignKey("refunds.id", ondelete="CASCADE"), nullable=False)
    bill_id = sa.Column(sa.ForeignKey("bills.id"), nullable=False, index=True)
    amount_fen = sa.Column(Money, nullable=False)

    refund = relationship("Refund", back_populates="allocations")
    bill = relationship("Bill")
