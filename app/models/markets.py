"""Markets (a deployment may run several markets or malls) and their zones (片区)."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, TimestampMixin, enum_column
from app.models.enums import MarketKind

zone_managers = sa.Table(
    "zone_managers",
    Model.metadata,
    sa.Column("zone_id", sa.ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True),
)


class Market(Audited, TimestampMixin, Model):
    __tablename__ = "markets"

    id = sa.Column(sa.Integer, primary_key=True)
    code = sa.Column(sa.String(32), nullable=False, unique=True)
    name = sa.Column(sa.String(100), nullable=False)
    kind = enum_column(MarketKind, default=MarketKind.market)
    address = sa.Column(sa.String(200))
    #: Bills fall due this many days after the period's bills are issued.
    due_days = sa.Column(sa.Integer, nullable=False, default=15)

    zones = relationship("Zone", back_populates="market", order_by="Zone.code")

    def __repr__(self):
        return self.name


class Zone(Audited, MarketScoped, TimestampMixin, Model):
    __tablename__ = "zones"
    __table_args__ = (sa.UniqueConstraint("market_id", "code"),)

    id = sa.Column(sa.Integer, primary_key=True)
    code = sa.Column(sa.String(32), nullable=False)
    name = sa.Column(sa.String(100), nullable=False)
    #: Plan canvas size in plan units (metres), used by the stall map.
    plan_width = sa.Column(sa.Integer, nullable=False, default=100)
    plan_height = sa.Column(sa.Integer, nullable=False, default=60)

    market = relationship("Market", back_populates="zones")
    managers = relationship("User", secondary=zone_managers, lazy="selectin")
    units = relationship("Unit", back_populates="zone", lazy="dynamic")

    def __repr__(self):
        return self.name

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.id.in_(zone_ids)
