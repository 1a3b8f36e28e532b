"""Append-only audit log: who changed what, before and after."""
import sqlalchemy as sa
from flask_appbuilder import Model

from app.models.base import UTCDateTime, enum_column
from app.models.enums import AuditAction
from app.utils.dates import now_utc


class AuditLog(Model):
    __tablename__ = "audit_log"
    __append_only__ = True

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    created_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc, index=True)
    market_id = sa.Column(sa.Integer, index=True)
    table_name = sa.Column(sa.String(64), nullable=False)
    row_id = sa.Column(sa.String(64))
    action = enum_column(AuditAction)
    #: JSON objects of the changed columns (before / after); money in fen.
    before = sa.Column(sa.JSON)
    after = sa.Column(sa.JSON)
    summary = sa.Column(sa.String(300))
    user_id = sa.Column(sa.Integer, sa.ForeignKey("ab_user.id"), index=True)
    username = sa.Column(sa.String(100))
    request_id = sa.Column(sa.String(64))
    reason = sa.Column(sa.String(300))

    user = sa.orm.relationship("User")

    __table_args__ = (sa.Index("ix_audit_log_table_row", "table_name", "row_id"),)
