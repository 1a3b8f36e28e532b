"""Late fees (滞纳金): versioned rules, daily accruals and waivers."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Money, TimestampMixin, UTCDateTime


class LateFeeRule(Audited, MarketScoped, TimestampMixin, Model):
    """A version of the late-fee rule of a market (lease_id empty) or of one lease (override).

    A change is a new version with a later effective_from; accruals keep the rule id
    they were computed with, so a change never alters fees already accrued.
    """

    __tablename__ = "late_fee_rules"
    __table_args__ = (
        sa.UniqueConstraint("market_id", "lease_id", "effective_from"),
        sa.CheckConstraint("daily_rate >= 0", name="rate_not_negative"),
        sa.CheckConstraint("grace_days >= 0", name="grace_not_negative"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    lease_id = sa.Column(sa.ForeignKey("leases.id"), index=True)
    #: The first day (Asia/Shanghai) this version applies to accruals.
    effective_from = sa.Column(sa.Date, nullable=False)
    #: Simple daily interest on overdue principal, e.g. 0.0005 = 万分之五 per day.
    daily_rate = sa.Column(sa.Numeric(10, 6), nullable=False)
    grace_days = sa.Column(sa.Integer, nullable=False, default=0)
    #: Cap on a bill's total late fee in fen (None = no amount cap).
    cap_fen = sa.Column(Money)
    #: Cap as a percentage of the bill's principal, e.g. 30 = 30% (None = no percentage cap).
    cap_percent = sa.Column(sa.Numeric(6, 2))
    is_active = sa.Column(sa.Boolean, nullable=False, default=True)
    note = sa.Column(sa.String(200))

    lease = relationship("Lease")


class LateFeeAccrual(MarketScoped, Model):
    """One day's late fee on one bill; (bill, day) is unique so re-running a day adds nothing."""

    __tablename__ = "late_fee_accruals"
    __table_args__ = (sa.UniqueConstraint("bill_id", "accrual_date"),)

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    bill_id = sa.Column(sa.ForeignKey("bills.id", ondelete="CASCADE"), nullable=False)
    rule_id = sa.Column(sa.ForeignKey("late_fee_rules.id"), nullable=False)
    #: The Shanghai calendar day the fee accrued for.
    accrual_date = sa.Column(sa.Date, nullable=False, index=True)
    principal_fen = sa.Column(Money, nullable=False)
    amount_fen = sa.Column(Money, nullable=False)
    created_dt = sa.Column(UTCDateTime, nullable=False)


class LateFeeWaiver(Audited, MarketScoped, TimestampMixin, Model):
    """Finance waives (part of) a bill's late fee, with a reason."""

    __tablename__ = "late_fee_waivers"

    id = sa.Column(sa.Integer, primary_key=True)
    bill_id = sa.Column(sa.ForeignKey("bills.id"), nullable=False, index=True)
    amount_fen = sa.Column(Money, nullable=False)
    reason = sa.Column(sa.String(300), nullable=False)
    created_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    bill = relationship("Bill")
    created_by = relationship("User")
