"""Leases: a merchant renting one or more units, with the fee items that apply."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Money, Rate, TimestampMixin, enum_column
from app.models.enums import BillingCycle, LeaseStatus

lease_units = sa.Table(
    "lease_units",
    Model.metadata,
    sa.Column("lease_id", sa.ForeignKey("leases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("unit_id", sa.ForeignKey("units.id"), primary_key=True, index=True),
)


class Lease(Audited, MarketScoped, TimestampMixin, Model):
    __tablename__ = "leases"
    __table_args__ = (
        sa.UniqueConstraint("market_id", "code"),
        sa.CheckConstraint("end_date >= start_date", name="dates_ordered"),
        sa.CheckConstraint("deposit_fen >= 0", name="deposit_not_negative"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    code = sa.Column(sa.String(32), nullable=False)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    #: The zone of the lease's units (all in one zone); scopes managers.
    zone_id = sa.Column(sa.ForeignKey("zones.id"), nullable=False, index=True)
    start_date = sa.Column(sa.Date, nullable=False)
    end_date = sa.Column(sa.Date, nullable=False)
    deposit_fen = sa.Column(Money, nullable=False, default=0)
    billing_cycle = enum_column(BillingCycle, default=BillingCycle.monthly)
    status = enum_column(LeaseStatus, default=LeaseStatus.draft, index=True)
    note = sa.Column(sa.Text)

    merchant = relationship("Merchant", back_populates="leases")
    zone = relationship("Zone")
    units = relationship("Unit", secondary=lease_units, lazy="selectin", order_by="Unit.code")
    fees = relationship(
        "LeaseFee", back_populates="lease", order_by="(LeaseFee.fee_item_id, LeaseFee.effective_from)"
    )

    def __repr__(self):
        return self.code

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class LeaseFee(Audited, MarketScoped, TimestampMixin, Model):
    """The price of one fee item on a lease from a date on. A price change adds a row."""

    __tablename__ = "lease_fees"
    __table_args__ = (sa.UniqueConstraint("lease_id", "fee_item_id", "effective_from"),)

    id = sa.Column(sa.Integer, primary_key=True)
    lease_id = sa.Column(sa.ForeignKey("leases.id", ondelete="CASCADE"), nullable=False, index=True)
    fee_item_id = sa.Column(sa.ForeignKey("fee_items.id"), nullable=False)
    effective_from = sa.Column(sa.Date, nullable=False)
    #: Price in fen (per month, per m² per month, or per unit of consumption); None = item default.
    rate_fen = sa.Column(Rate)
    note = sa.Column(sa.String(200))

    lease = relationship("Lease", back_populates="fees")
    fee_item = relationship("FeeItem", lazy="joined")

    @property
    def scope_parent(self):
        return self.lease

    def __repr__(self):
        return f"{self.fee_item} @ {self.rate_fen} ({self.effective_from})"

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.lease_id.in_(sa.select(Lease.id).where(Lease.zone_id.in_(zone_ids)))
