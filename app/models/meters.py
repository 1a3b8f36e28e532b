"""Water and electricity meters, and their replacements."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Quantity, TimestampMixin, enum_column
from app.models.enums import MeterType
from app.models.units import Unit


class Meter(Audited, MarketScoped, TimestampMixin, Model):
    __tablename__ = "meters"
    __table_args__ = (sa.UniqueConstraint("market_id", "number"),)

    id = sa.Column(sa.Integer, primary_key=True)
    number = sa.Column(sa.String(40), nullable=False)
    meter_type = enum_column(MeterType)
    #: The unit it serves; None for a public (shared) meter apportioned by area.
    unit_id = sa.Column(sa.ForeignKey("units.id"), index=True)
    zone_id = sa.Column(sa.ForeignKey("zones.id"), nullable=False, index=True)
    unit_label = sa.Column(sa.String(8), nullable=False, default="kWh")
    #: 倍率: consumption = (reading difference) x multiplier.
    multiplier = sa.Column(Quantity, nullable=False, default=1)
    #: The highest reading before the register rolls over to zero.
    max_reading = sa.Column(Quantity, nullable=False, default=99999)
    install_date = sa.Column(sa.Date, nullable=False)
    start_reading = sa.Column(Quantity, nullable=False, default=0)
    is_public = sa.Column(sa.Boolean, nullable=False, default=False)
    is_active = sa.Column(sa.Boolean, nullable=False, default=True)

    unit = relationship("Unit")
    zone = relationship("Zone")
    replacements = relationship(
        "MeterReplacement", back_populates="meter", order_by="MeterReplacement.replaced_date"
    )

    def __repr__(self):
        return self.number

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class MeterReplacement(Audited, MarketScoped, TimestampMixin, Model):
    """A meter swapped on a date: the old register's final reading and the new one's start."""

    __tablename__ = "meter_replacements"
    __table_args__ = (sa.UniqueConstraint("meter_id", "replaced_date"),)

    id = sa.Column(sa.Integer, primary_key=True)
    meter_id = sa.Column(sa.ForeignKey("meters.id", ondelete="CASCADE"), nullable=False)
    replaced_date = sa.Column(sa.Date, nullable=False)
    old_final_reading = sa.Column(Quantity, nullable=False)
    new_start_reading = sa.Column(Quantity, nullable=False, default=0)
    note = sa.Column(sa.String(200))

    meter = relationship("Meter", back_populates="replacements")

    @property
    def scope_parent(self):
        return self.meter

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.meter_id.in_(sa.select(Meter.id).where(Meter.zone_id.in_(zone_ids)))


__all__ = ["Meter", "MeterReplacement", "Unit"]
