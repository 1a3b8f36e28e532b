"""Shared column types and mixins; sets the metadata naming convention."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import declared_attr, relationship

from app.utils.dates import now_utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Model.metadata.naming_convention = NAMING_CONVENTION


class UTCDateTime(sa.TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


#: Rates and quantities: exact decimals, never float.
Quantity = sa.Numeric(16, 4, asdecimal=True)
Rate = sa.Numeric(16, 4, asdecimal=True)
Money = sa.BigInteger  # integer fen


def enum_column(enum_cls, default=None, nullable=False, **kw):
    """A string-valued enum column with a CHECK constraint named after the enum."""
    return sa.Column(
        sa.Enum(
            enum_cls,
            native_enum=False,
            length=24,
            values_callable=lambda e: [m.value for m in e],
            create_constraint=True,
            name=enum_cls.__name__.lower(),
            validate_strings=True,
        ),
        nullable=nullable,
        default=default,
        **kw,
    )


class TimestampMixin:
    """created_dt / updated_dt in UTC."""

    created_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc)
    updated_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc, onupdate=now_utc)


class MarketScoped:
    """Rows that belong to one market carry market_id."""

    @declared_attr
    def market_id(cls):
        return sa.Column(sa.ForeignKey("markets.id"), nullable=False, index=True)

    @declared_attr
    def market(cls):
        return relationship("Market", lazy="joined", viewonly=False)


class Audited:
    """Marker: changes to these rows are written to the audit log."""

    __audited__ = True


def utcnow() -> datetime:
    """Alias used as a column default."""
    return now_utc()
