"""Late fees (滞纳金): versioned rules, daily accruals, waivers and the per-market run log.

How fees are computed is documented in docs/late-fees.md and implemented in
app/services/latefees.py.
"""
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
    #: An inactive version suspends late fees from effective_from on (for its lease or market).
    is_active = sa.Column(sa.Boolean, nullable=False, default=True)
    note = sa.Column(sa.String(200))

    lease = relationship("Lease")

    def __repr__(self):
        scope = self.lease.code if self.lease is not None else "全市场"
        return f"{scope} {self.effective_from} {self.daily_rate}/日"

    @classmethod
    def zone_clause(cls, zone_ids):
        from app.models.leases import Lease

        return sa.or_(cls.lease_id.is_(None), cls.lease_id.in_(sa.select(Lease.id).where(Lease.zone_id.in_(zone_ids))))


class LateFeeAccrual(MarketScoped, Model):
    """One day's late fee on one bill; (bill, day) is unique so re-running a day adds nothing.

    Each row also carries the bill's running totals, so the next day needs only the
    latest row: the exact (unrounded, uncapped) interest so far in millionths of a fen and
    the fen accrued so far. amount_fen = round_half_up(min(exact, cap)) - previous cumulative_fen.
    """

    __tablename__ = "late_fee_accruals"
    __table_args__ = (sa.UniqueConstraint("bill_id", "accrual_date"),)

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    bill_id = sa.Column(sa.ForeignKey("bills.id", ondelete="CASCADE"), nullable=False)
    rule_id = sa.Column(sa.ForeignKey("late_fee_rules.id"), nullable=False)
    #: The Shanghai calendar day the fee accrued for.
    accrual_date = sa.Column(sa.Date, nullable=False, index=True)
    #: Unpaid principal at the start of accrual_date (Shanghai), in fen.
    principal_fen = sa.Column(Money, nullable=False)
    #: This day's exact interest, principal x daily rate, in millionths of a fen.
    daily_micro_fen = sa.Column(Money, nullable=False, default=0)
    #: Exact interest from the first accrued day through accrual_date, millionths of a fen (uncapped).
    cumulative_micro_fen = sa.Column(Money, nullable=False, default=0)
    #: Fen accrued on this bill through accrual_date (sum of amount_fen; waivers not deducted).
    cumulative_fen = sa.Column(Money, nullable=False, default=0)
    #: The cap in force that day in fen (None = no cap).
    cap_fen = sa.Column(Money)
    #: Fen added to the bill's late fee for this day (0 inside the grace period or at the cap).
    amount_fen = sa.Column(Money, nullable=False)
    created_dt = sa.Column(UTCDateTime, nullable=False)

    bill = relationship("Bill")
    rule = relationship("LateFeeRule")

    @classmethod
    def zone_clause(cls, zone_ids):
        from app.models.bills import Bill

        return cls.bill_id.in_(sa.select(Bill.id).where(Bill.zone_id.in_(zone_ids)))


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

    @classmethod
    def zone_clause(cls, zone_ids):
        from app.models.bills import Bill

        return cls.bill_id.in_(sa.select(Bill.id).where(Bill.zone_id.in_(zone_ids)))


class LateFeeRun(MarketScoped, Model):
    """One accrued day of a market: the job never accrues a day at or before the latest run again."""

    __tablename__ = "late_fee_runs"
    __table_args__ = (sa.UniqueConstraint("market_id", "accrual_date"),)

    id = sa.Column(sa.Integer, primary_key=True)
    #: The Shanghai calendar day accrued.
    accrual_date = sa.Column(sa.Date, nullable=False)
    #: Accrual rows written (grace-period and capped bills included).
    row_count = sa.Column(sa.Integer, nullable=False, default=0)
    #: Bills whose late fee grew that day.
    bill_count = sa.Column(sa.Integer, nullable=False, default=0)
    amount_fen = sa.Column(Money, nullable=False, default=0)
    created_dt = sa.Column(UTCDateTime, nullable=False)
