"""Zone scoping: the one place that decides which rows a staff user may see.

Every list, detail page, export and REST API of zone-owned rows goes through
scope_query(); FAB views and APIs use ZoneScopeFilter, which calls it.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.filters import BaseFilter
from flask import has_request_context
from flask_login import current_user

from app.extensions import db
from app.models.markets import Zone, zone_managers
from app.security import MANAGER, UNRESTRICTED_ROLES, user_role_names


def visible_zone_ids(user) -> set[int] | None:
    """Zone ids the user may see; None means every zone."""
    roles = user_role_names(user)
    if roles & UNRESTRICTED_ROLES:
        return None
    if MANAGER in roles:
        rows = db.session.execute(
            sa.select(zone_managers.c.zone_id).where(zone_managers.c.user_id == user.id)
        )
        return {row[0] for row in rows}
    return set()


def zone_condition(model, user):
    """A SQL condition restricting `model` to the user's zones (None when unrestricted)."""
    zone_ids = visible_zone_ids(user)
    if zone_ids is None:
        return None
    if not hasattr(model, "zone_clause"):
        # Rows with no zone (markets, fee items) are visible to anyone allowed the view.
        return None
    return model.zone_clause(sorted(zone_ids) or [-1])


def scope_query(query, model, user=None):
    """Restrict a query (ORM Query or Select) over `model` to the user's zones."""
    user = current_user if user is None else user
    condition = zone_condition(model, user)
    if condition is None:
        return query
    if isinstance(query, sa.Select):
        return query.where(condition)
    return query.filter(condition)


def can_see_zone(zone_id, user=None) -> bool:
    """Whether the user may see rows of the given zone."""
    zone_ids = visible_zone_ids(current_user if user is None else user)
    return zone_ids is None or zone_id in zone_ids


class ZoneScopeFilter(BaseFilter):
    """FAB base filter applying scope_query to a view's or API's queries."""

    name = "zone scope"
    arg_name = "zone_scope"

    def apply(self, query, value):
        return scope_query(query, self.model)


class ZoneScopeViolation(Exception):
    """A user tried to write a row of a zone they do not manage."""

    code = "zone_forbidden"
    http_status = 403


def row_zone_id(obj):
    """The zone a row belongs to, if it belongs to one."""
    zone = obj.__dict__.get("zone") if not isinstance(obj, Zone) else obj
    if zone is not None and getattr(zone, "id", None) is not None:
        return zone.id  # the relationship wins: FK columns are only synced at flush
    zone_id = getattr(obj, "zone_id", None)
    if zone_id is not None:
        return zone_id
    parent = getattr(obj, "scope_parent", None)
    return row_zone_id(parent) if parent is not None else None


def _guard_writes(session, flush_context, instances):
    """Refuse, at flush time, any write by a zone-restricted user outside their zones.

    Forms, FAB's REST API and services all flush through here, so a crafted request
    cannot place or move a row into another manager's zone.
    """
    if not has_request_context():
        return
    try:
        user = current_user._get_current_object()
    except Exception:
        return
    if user is None or not getattr(user, "is_authenticated", False) or not hasattr(user, "roles"):
        return
    zone_ids = visible_zone_ids(user)
    if zone_ids is None:
        return
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if not hasattr(type(obj), "zone_clause"):
            continue
        writable_by = getattr(obj, "writable_by", None)  # e.g. a ticket's assignee, whatever their zones
        if writable_by is not None and writable_by(user):
            continue
        zone_id = row_zone_id(obj)
        if zone_id is not None and zone_id not in zone_ids:
            raise ZoneScopeViolation(f"无权操作该片区的数据（片区 {zone_id}）")
        if obj in session.dirty and hasattr(obj, "zone_id"):
            state = sa.inspect(obj)
            before = [z for z in state.attrs.zone_id.history.deleted if z is not None]
            if "zone" in state.attrs.keys():
                before += [z.id for z in state.attrs.zone.history.deleted if z is not None]
            if any(z not in zone_ids for z in before):
                raise ZoneScopeViolation("无权移动其他片区的数据")


_guard_installed = False


def install_write_guard():
    """Register the flush-time zone guard once per process."""
    global _guard_installed
    if not _guard_installed:
        from flask_sqlalchemy.session import Session as FlaskSession

        sa.event.listen(FlaskSession, "before_flush", _guard_writes)
        _guard_installed = True
