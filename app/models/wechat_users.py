"""Mini-program users (微信用户), their bindings to merchants and their API tokens."""
import sqlalchemy as sa
from flask_appbuilder import Model
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import LabeledEnum


class BindingRole(LabeledEnum):
    owner = "owner"
    assistant = "assistant"

    @classmethod
    def _labels(cls):
        return {"owner": _("Owner"), "assistant": _("Shop assistant")}


class BindingMethod(LabeledEnum):
    phone = "phone"
    qr = "qr"

    @classmethod
    def _labels(cls):
        return {"phone": _("Phone number"), "qr": _("Stall QR code")}


class WeChatUser(TimestampMixin, Model):
    """A person using the mini-program, known by the openid WeChat gives for our appid."""

    __tablename__ = "wechat_users"

    id = sa.Column(sa.Integer, primary_key=True)
    openid = sa.Column(sa.String(64), nullable=False, unique=True)
    unionid = sa.Column(sa.String(64), index=True)
    last_login_dt = sa.Column(UTCDateTime)

    bindings = relationship("MerchantBinding", back_populates="wechat_user", lazy="selectin",
                            order_by="MerchantBinding.id")

    def __repr__(self):
        return self.openid


class MerchantBinding(Audited, MarketScoped, TimestampMixin, Model):
    """A WeChat user allowed to act for a merchant, as its owner or a shop assistant.

    One row per (user, merchant): revoking sets revoked_dt, binding again clears it.
    """

    __tablename__ = "merchant_bindings"
    __table_args__ = (sa.UniqueConstraint("wechat_user_id", "merchant_id"),)

    id = sa.Column(sa.Integer, primary_key=True)
    wechat_user_id = sa.Column(sa.ForeignKey("wechat_users.id", ondelete="CASCADE"), nullable=False, index=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    role = enum_column(BindingRole, default=BindingRole.assistant)
    bound_via = enum_column(BindingMethod)
    #: The unit whose QR code was scanned (bound_via = qr).
    unit_id = sa.Column(sa.ForeignKey("units.id"))
    revoked_dt = sa.Column(UTCDateTime)
    revoked_by_id = sa.Column(sa.ForeignKey("ab_user.id"))

    wechat_user = relationship("WeChatUser", back_populates="bindings")
    merchant = relationship("Merchant", lazy="joined")
    unit = relationship("Unit")
    revoked_by = relationship("User")

    def __repr__(self):
        return f"{self.wechat_user} → {self.merchant}"

    @property
    def is_active(self) -> bool:
        return self.revoked_dt is None

    @property
    def revoke_target(self) -> int | None:
        """The id while the binding can still be revoked (the back office list's button)."""
        return self.id if self.revoked_dt is None else None

    @classmethod
    def zone_clause(cls, zone_ids):
        from app.models.merchants import Merchant

        return cls.merchant_id.in_(sa.select(Merchant.id).where(Merchant.zone_id.in_(zone_ids)))


class ApiToken(Model):
    """A mini-program API token. Only the SHA-256 of the token is stored, never the token."""

    __tablename__ = "api_tokens"

    id = sa.Column(sa.Integer, primary_key=True)
    wechat_user_id = sa.Column(sa.ForeignKey("wechat_users.id", ondelete="CASCADE"), nullable=False, index=True)
    #: Hex SHA-256 of the bearer token.
    token_hash = sa.Column(sa.String(64), nullable=False, unique=True)
    created_dt = sa.Column(UTCDateTime, nullable=False)
    expires_dt = sa.Column(UTCDateTime, nullable=False)
    revoked_dt = sa.Column(UTCDateTime)
    last_used_dt = sa.Column(UTCDateTime)

    wechat_user = relationship("WeChatUser", lazy="joined")
