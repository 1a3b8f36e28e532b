"""The audit trail: every change to an audited row becomes an append-only AuditLog entry.

ORM changes are captured by a before_flush hook (so edits through the back office,
services and the API are all recorded); set-based bulk statements call record_bulk().
"""
from __future__ import annotations

import decimal
import enum
import uuid
from datetime import date, datetime

import sqlalchemy as sa
from flask import g, has_request_context, request
from flask_login import current_user
from flask_sqlalchemy.session import Session as FlaskSession

from app.models.audit import AuditLog
from app.models.enums import AuditAction

SKIP_COLUMNS = {"created_dt", "updated_dt"}


class AuditLogIsAppendOnly(Exception):
    """An audit entry may never be changed or deleted."""


def _jsonable(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def current_actor():
    """(user_id, username, request_id) of whoever is acting now, if known."""
    user_id = username = request_id = None
    if has_request_context():
        try:
            if current_user and current_user.is_authenticated:
                user_id, username = current_user.id, current_user.username
        except Exception:  # no login manager during some CLI contexts
            pass
        request_id = getattr(g, "request_id", None) or request.headers.get("X-Request-ID")
    actor = getattr(g, "audit_actor", None) if _has_app_g() else None
    if actor and user_id is None:
        user_id, username = actor
    return user_id, username, request_id


def _has_app_g():
    from flask import has_app_context

    return has_app_context()


def set_actor(user_id=None, username=None):
    """Name the actor for work done outside a request (CLI, jobs)."""
    g.audit_actor = (user_id, username)


def _column_attrs(obj):
    mapper = sa.inspect(obj).mapper
    return [attr for attr in mapper.column_attrs if attr.key not in SKIP_COLUMNS]


def _snapshot(obj):
    return {attr.key: _jsonable(getattr(obj, attr.key)) for attr in _column_attrs(obj)}


def _changes(obj):
    before, after = {}, {}
    state = sa.inspect(obj)
    for attr in _column_attrs(obj):
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if _jsonable(old) != _jsonable(new):
                before[attr.key] = _jsonable(old)
                after[attr.key] = _jsonable(new)
    return before, after


def _entry(obj, action, before, after, reason=None):
    user_id, username, request_id = current_actor()
    state = sa.inspect(obj)
    pk = state.identity or state.mapper.primary_key_from_instance(obj)
    return AuditLog(
        market_id=getattr(obj, "market_id", None) if obj.__tablename__ != "markets" else obj.id,
        table_name=obj.__tablename__,
        row_id=str(pk[0]) if pk and pk[0] is not None else None,
        action=action,
        before=before or None,
        after=after or None,
        summary=f"{obj.__tablename__} {repr(obj)[:200]}",
        user_id=user_id,
        username=username,
        request_id=request_id,
        reason=reason or getattr(obj, "_audit_reason", None),
    )


def _before_flush(session, flush_context, instances):
    for obj in list(session.dirty) + list(session.deleted):
        if getattr(obj, "__append_only__", False):
            raise AuditLogIsAppendOnly("audit entries cannot be changed or deleted")
    pending_new = [obj for obj in session.new if getattr(obj, "__audited__", False)]
    if pending_new:
        session.info.setdefault("audit_new", []).extend(pending_new)
    for obj in list(session.dirty):
        if getattr(obj, "__audited__", False) and session.is_modified(obj, include_collections=False):
            before, after = _changes(obj)
            if after:
                session.add(_entry(obj, AuditAction.update, before, after))
    for obj in list(session.deleted):
        if getattr(obj, "__audited__", False):
            session.add(_entry(obj, AuditAction.delete, _snapshot(obj), None))


def _after_flush(session, flush_context):
    new_objs = session.info.pop("audit_new", [])
    if new_objs:
        # Ids exist only after the INSERT; write the entries in this same transaction.
        rows = []
        for obj in new_objs:
            entry = _entry(obj, AuditAction.insert, None, _snapshot(obj))
            rows.append({c.key: getattr(entry, c.key) for c in sa.inspect(AuditLog).column_attrs if c.key != "id"})
        session.execute(sa.insert(AuditLog), rows)


def record_bulk(session, market_id, table_name, summary, after=None, reason=None):
    """Write one audit entry for a set-based change (an import, a billing run)."""
    user_id, username, request_id = current_actor()
    session.add(
        AuditLog(
            market_id=market_id,
            table_name=table_name,
            action=AuditAction.bulk,
            after=after,
            summary=summary[:300],
            user_id=user_id,
            username=username,
            request_id=request_id,
            reason=reason,
        )
    )


def record_change(session, obj, before, after, reason):
    """Write an explicit audit entry with a reason (voids, waivers, corrections)."""
    session.add(_entry(obj, AuditAction.update, before, after, reason=reason))


def new_request_id():
    """A request id for log correlation."""
    return uuid.uuid4().hex


_installed = False


def install():
    """Register the flush hooks once per process."""
    global _installed
    if _installed:
        return
    sa.event.listen(FlaskSession, "before_flush", _before_flush)
    sa.event.listen(FlaskSession, "after_flush", _after_flush)
    _installed = True


__all__ = ["install", "record_bulk", "record_change", "set_actor", "AuditLogIsAppendOnly"]
