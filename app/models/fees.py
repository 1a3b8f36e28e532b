"""Fee items (收费项目) and their tiered unit prices."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Quantity, Rate, TimestampMixin, enum_column
from app.models.enums import FeeKind, MeterType, PricingMode


class FeeItem(Audited, MarketScoped, TimestampMixin, Model):
    __tablename__ = "fee_items"
    __table_args__ = (sa.UniqueConstraint("market_id", "code"),)

    id = sa.Column(sa.Integer, primary_key=True)
    code = sa.Column(sa.String(32), nullable=False)
    name = sa.Column(sa.String(50), nullable=False)
    kind = enum_column(FeeKind, default=FeeKind.other)
    pricing_mode = enum_column(PricingMode, default=PricingMode.fixed)
    #: For metered items: which meters feed it.
    meter_type = enum_column(MeterType, nullable=True)
    #: Default price in fen: per month (fixed), per m² per month (per_area), per unit (metered,
    #: used when the item has no tiers). May carry fractions of a fen; amounts are rounded half-up.
    default_rate_fen = sa.Column(Rate, nullable=False, default=0)
    unit_label = sa.Column(sa.String(16))
    is_active = sa.Column(sa.Boolean, nullable=False, default=True)
    sort_order = sa.Column(sa.Integer, nullable=False, default=0)

    tiers = relationship(
        "FeeTier", back_populates="fee_item", order_by="FeeTier.from_qty", cascade="all, delete-orphan"
    )

    def __repr__(self):
        return self.name


class FeeTier(Audited, MarketScoped, Model):
    """A step of a tiered price: consumption above from_qty (up to to_qty) costs rate_fen per unit."""

    __tablename__ = "fee_tiers"
    __table_args__ = (sa.UniqueConstraint("fee_item_id", "from_qty"),)

    id = sa.Column(sa.Integer, primary_key=True)
    fee_item_id = sa.Column(sa.ForeignKey("fee_items.id", ondelete="CASCADE"), nullable=False)
    from_qty = sa.Column(Quantity, nullable=False, default=0)
    #: None means unbounded.
    to_qty = sa.Column(Quantity)
    #: fen per unit of consumption.
    rate_fen = sa.Column(Rate, nullable=False)

    fee_item = relationship("FeeItem", back_populates="tiers")

    def __repr__(self):
        upper = self.to_qty if self.to_qty is not None else "∞"
        return f"{self.from_qty}–{upper}: {self.rate_fen}"
