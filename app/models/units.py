"""Stalls and shop units (摊位/铺位)."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, Quantity, TimestampMixin, enum_column
from app.models.enums import UnitStatus


class Unit(Audited, MarketScoped, TimestampMixin, Model):
    __tablename__ = "units"
    __table_args__ = (sa.UniqueConstraint("market_id", "code"),)

    id = sa.Column(sa.Integer, primary_key=True)
    zone_id = sa.Column(sa.ForeignKey("zones.id"), nullable=False, index=True)
    code = sa.Column(sa.String(32), nullable=False)
    floor = sa.Column(sa.String(16), nullable=False, default="1")
    #: Floor area in m².
    area_m2 = sa.Column(Quantity, nullable=False)
    category = sa.Column(sa.String(50))
    status = enum_column(UnitStatus, default=UnitStatus.vacant, index=True)
    #: Position on the zone plan, in plan units (metres from the top-left corner).
    plan_x = sa.Column(sa.Numeric(10, 2))
    plan_y = sa.Column(sa.Numeric(10, 2))
    plan_w = sa.Column(sa.Numeric(10, 2))
    plan_h = sa.Column(sa.Numeric(10, 2))
    #: Optional polygon "x1,y1 x2,y2 ..." in plan units, overrides the rectangle.
    plan_polygon = sa.Column(sa.Text)
    note = sa.Column(sa.String(200))

    zone = relationship("Zone", back_populates="units")

    def __repr__(self):
        return self.code

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)
