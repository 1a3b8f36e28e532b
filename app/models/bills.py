"""Billing runs, bills (账单), their lines and one-off charges (费用录入)."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Money, Quantity, Rate, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import OPEN_BILL_STATUSES, BillKind, BillStatus, ChargeStatus, RunStatus


class BillingRun(MarketScoped, TimestampMixin, Model):
    """One posting of a market's bills for a period; (market, period) is unique."""

    __tablename__ = "billing_runs"
    __table_args__ = (sa.UniqueConstraint("market_id", "period"),)

    id = sa.Column(sa.Integer, primary_key=True)
    #: First day of the billed month (Asia/Shanghai).
    period = sa.Column(sa.Date, nullable=False)
    status = enum_column(RunStatus, default=RunStatus.queued)
    job_id = sa.Column(sa.String(64))
    issue_date = sa.Column(sa.Date)
    due_date = sa.Column(sa.Date)
    bill_count = sa.Column(sa.Integer, nullable=False, default=0)
    line_count = sa.Column(sa.Integer, nullable=False, default=0)
    total_fen = sa.Column(Money, nullable=False, default=0)
    progress_done = sa.Column(sa.Integer, nullable=False, default=0)
    progress_total = sa.Column(sa.Integer, nullable=False, default=0)
    started_dt = sa.Column(UTCDateTime)
    finished_dt = sa.Column(UTCDateTime)
    created_by_id = sa.Column(sa.ForeignKey("ab_user.id"))
    error = sa.Column(sa.Text)
    #: The last posting's report: {"message", "new_bills", "new_lines", "new_total_fen",
    #: "missing_readings", "missing_sample": [meter numbers], "unapportioned": [...]}.
    report = sa.Column(sa.JSON)

    created_by = relationship("User")


class Bill(Audited, MarketScoped, TimestampMixin, Model):
    """What a merchant owes for a lease and period (or an adjustment / one-off charge).

    amount_fen is the sum of the bill's lines; paid_fen what payments allocated to it;
    late_fee_fen the accrued late fee net of waivers. A posted bill is never silently
    changed: corrections are adjustment bills, voiding needs a reason.
    """

    __tablename__ = "bills"
    __table_args__ = (
        sa.UniqueConstraint("market_id", "number"),
        sa.Index(
            "uq_bills_regular_lease_period",
            "lease_id",
            "period",
            unique=True,
            # A void bill frees its (lease, period): re-running the period bills the lease again.
            postgresql_where=sa.text("kind = 'regular' AND status <> 'void'"),
            sqlite_where=sa.text("kind = 'regular' AND status <> 'void'"),
        ),
        sa.Index("ix_bills_market_period_status", "market_id", "period", "status"),
        sa.Index("ix_bills_status_due_date", "status", "due_date"),
        sa.CheckConstraint("paid_fen >= 0", name="paid_not_negative"),
        sa.CheckConstraint("late_fee_fen >= 0", name="late_fee_not_negative"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    number = sa.Column(sa.String(40), nullable=False)
    kind = enum_column(BillKind, default=BillKind.regular)
    status = enum_column(BillStatus, default=BillStatus.issued)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    lease_id = sa.Column(sa.ForeignKey("leases.id"), index=True)
    zone_id = sa.Column(sa.ForeignKey("zones.id"), nullable=False, index=True)
    #: First day of the billed month (Asia/Shanghai).
    period = sa.Column(sa.Date, nullable=False)
    issue_date = sa.Column(sa.Date, nullable=False)
    due_date = sa.Column(sa.Date, nullable=False)
    amount_fen = sa.Column(Money, nullable=False, default=0)
    paid_fen = sa.Column(Money, nullable=False, default=0)
    late_fee_fen = sa.Column(Money, nullable=False, default=0)
    run_id = sa.Column(sa.ForeignKey("billing_runs.id"), index=True)
    adjusts_bill_id = sa.Column(sa.ForeignKey("bills.id"))
    paid_dt = sa.Column(UTCDateTime)
    voided_dt = sa.Column(UTCDateTime)
    void_reason = sa.Column(sa.String(300))
    #: Assigned when the bill is fully paid; printed on the e-receipt.
    receipt_no = sa.Column(sa.String(40), unique=True)
    note = sa.Column(sa.String(300))

    merchant = relationship("Merchant")
    lease = relationship("Lease")
    zone = relationship("Zone")
    run = relationship("BillingRun")
    adjusts = relationship("Bill", remote_side=[id])
    lines = relationship("BillLine", back_populates="bill", order_by="BillLine.id", cascade="all")

    def __repr__(self):
        return self.number

    @hybrid_property
    def outstanding_fen(self) -> int:
        """What is still owed: principal plus late fee minus payments (also a SQL expression)."""
        return self.amount_fen + self.late_fee_fen - self.paid_fen

    def is_overdue_on(self, day) -> bool:
        """Open, past its due date and still owing on the given Shanghai day (cf. overdue_clause)."""
        return self.status in OPEN_BILL_STATUSES and self.due_date < day and self.outstanding_fen > 0

    @property
    def principal_outstanding_fen(self) -> int:
        """Unpaid principal (payments settle principal first); late fees accrue on this."""
        return max(self.amount_fen - self.paid_fen, 0)

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class BillLine(MarketScoped, Model):
    """One fee on a bill: quantity x rate = amount (rounded half-up to fen)."""

    __tablename__ = "bill_lines"
    __table_args__ = (sa.Index("ix_bill_lines_bill_id", "bill_id"),)

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    bill_id = sa.Column(sa.ForeignKey("bills.id", ondelete="CASCADE"), nullable=False)
    fee_item_id = sa.Column(sa.ForeignKey("fee_items.id"))
    unit_id = sa.Column(sa.ForeignKey("units.id"))
    meter_id = sa.Column(sa.ForeignKey("meters.id"))
    reading_id = sa.Column(sa.Integer)
    charge_id = sa.Column(sa.ForeignKey("charges.id"))
    description = sa.Column(sa.String(200), nullable=False)
    quantity = sa.Column(Quantity, nullable=False, default=1)
    unit_label = sa.Column(sa.String(16))
    #: fen per unit of quantity (may carry fractions of a fen).
    rate_fen = sa.Column(Rate)
    amount_fen = sa.Column(Money, nullable=False)
    service_start = sa.Column(sa.Date)
    service_end = sa.Column(sa.Date)

    bill = relationship("Bill", back_populates="lines")
    fee_item = relationship("FeeItem")

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.bill_id.in_(sa.select(Bill.id).where(Bill.zone_id.in_(zone_ids)))


class Charge(Audited, MarketScoped, TimestampMixin, Model):
    """A one-off charge (repair cost, penalty) billed with the next run or at once."""

    __tablename__ = "charges"

    id = sa.Column(sa.Integer, primary_key=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    lease_id = sa.Column(sa.ForeignKey("leases.id"))
    zone_id = sa.Column(sa.ForeignKey("zones.id"), nullable=False, index=True)
    fee_item_id = sa.Column(sa.ForeignKey("fee_items.id"))
    description = sa.Column(sa.String(200), nullable=False)
    amount_fen = sa.Column(Money, nullable=False)
    status = enum_column(ChargeStatus, default=ChargeStatus.pending)
    bill_id = sa.Column(sa.ForeignKey("bills.id"))
    created_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    merchant = relationship("Merchant")
    lease = relationship("Lease")
    zone = relationship("Zone")
    fee_item = relationship("FeeItem")
    bill = relationship("Bill", foreign_keys=[bill_id])

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class BillingStagedLine(MarketScoped, Model):
    """A computed bill line waiting to be posted (or shown in a preview); one batch per computation.

    A billing run writes every line of the period here with set-based INSERT ... SELECT statements,
    then posts them: bills grouped per lease, lines copied, the batch deleted, all in one
    transaction. A preview keeps its batch so the preview page can page through it.
    """

    __tablename__ = "billing_staged_lines"
    __table_args__ = (
        sa.Index("ix_billing_staged_lines_batch_lease", "batch", "lease_id"),
        sa.Index("ix_billing_staged_lines_market_period", "market_id", "period"),
    )

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    #: Random token of one computation (a preview, or the posting transaction).
    batch = sa.Column(sa.String(32), nullable=False)
    #: First day of the billed month (Asia/Shanghai).
    period = sa.Column(sa.Date, nullable=False)
    #: fixed, per_area, metered, public or charge.
    line_kind = sa.Column(sa.String(16), nullable=False)
    sort_key = sa.Column(sa.Integer, nullable=False, default=0)
    lease_id = sa.Column(sa.Integer, nullable=False)
    merchant_id = sa.Column(sa.Integer, nullable=False)
    zone_id = sa.Column(sa.Integer, nullable=False)
    fee_item_id = sa.Column(sa.Integer)
    unit_id = sa.Column(sa.Integer)
    meter_id = sa.Column(sa.Integer)
    reading_id = sa.Column(sa.Integer)
    charge_id = sa.Column(sa.Integer)
    description = sa.Column(sa.String(200), nullable=False)
    quantity = sa.Column(Quantity, nullable=False, default=1)
    unit_label = sa.Column(sa.String(16))
    #: fen per unit of quantity (may carry fractions of a fen); None for tiered or apportioned lines.
    rate_fen = sa.Column(Rate)
    amount_fen = sa.Column(Money, nullable=False)
    service_start = sa.Column(sa.Date)
    service_end = sa.Column(sa.Date)
    created_dt = sa.Column(UTCDateTime, nullable=False)
