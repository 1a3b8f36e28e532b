"""Merchants and tenants (商户/租户)."""
import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, TimestampMixin


class Merchant(Audited, MarketScoped, TimestampMixin, Model):
    __tablename__ = "merchants"
    __table_args__ = (sa.UniqueConstraint("market_id", "code"),)

    id = sa.Column(sa.Integer, primary_key=True)
    code = sa.Column(sa.String(32), nullable=False)
    name = sa.Column(sa.String(100), nullable=False, index=True)
    #: The zone the merchant trades in (set from its leased units); scopes managers.
    zone_id = sa.Column(sa.ForeignKey("zones.id"), index=True)
    contact_name = sa.Column(sa.String(50))
    phone = sa.Column(sa.String(20), index=True)
    phone2 = sa.Column(sa.String(20))
    business_licence_no = sa.Column(sa.String(50))
    #: 统一社会信用代码 (18 characters).
    credit_code = sa.Column(sa.String(18))
    id_card_no = sa.Column(sa.String(18))
    notify_wechat = sa.Column(sa.Boolean, nullable=False, default=True)
    notify_sms = sa.Column(sa.Boolean, nullable=False, default=True)
    notify_bill = sa.Column(sa.Boolean, nullable=False, default=True)
    notify_overdue = sa.Column(sa.Boolean, nullable=False, default=True)
    notify_ticket = sa.Column(sa.Boolean, nullable=False, default=True)
    note = sa.Column(sa.Text)

    zone = relationship("Zone")
    leases = relationship("Lease", back_populates="merchant", lazy="dynamic")

    def __repr__(self):
        return self.name

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)
