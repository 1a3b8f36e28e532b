"""Zone scoping: the one place that decides which rows a staff user may see.

Every list, detail page, export and REST API of zone-owned rows goes through
scope_query(); FAB views and APIs use ZoneScopeFilter, which calls it.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.filters import BaseFilter
from flask_login import current_user

from app.extensions import db
from app.models.markets import zone_managers
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
