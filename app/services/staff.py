"""Staff accounts (FAB users) and their roles."""
from __future__ import annotations

from flask import current_app

from app.extensions import db
from app.models import Zone
from app.security import STAFF_ROLES
from app.services.exceptions import Conflict, ValidationFailed


def ensure_roles():
    """Create the role rows declared in code (their permissions live in code)."""
    sm = current_app.appbuilder.sm
    for name in STAFF_ROLES:
        if sm.find_role(name) is None:
            sm.add_role(name)
    db.session.flush()


def create_staff_user(username, password, role_names, first_name, last_name="", email=None):
    """Create a staff user with the given roles; refuses duplicates."""
    sm = current_app.appbuilder.sm
    if not password or len(password) < 8:
        raise ValidationFailed("密码至少 8 位")
    if sm.find_user(username=username):
        raise Conflict(f"用户 {username} 已存在")
    ensure_roles()
    roles = [sm.find_role(name) for name in role_names]
    if any(role is None for role in roles):
        raise ValidationFailed(f"未知角色：{role_names}")
    user = sm.add_user(
        username=username,
        first_name=first_name,
        last_name=last_name or "",
        email=email or f"{username}@market.invalid",
        role=roles,
        password=password,
    )
    if not user:
        raise Conflict(f"无法创建用户 {username}")
    return user


def assign_zone_manager(zone: Zone, user) -> None:
    """Make the user a manager of the zone."""
    if user not in zone.managers:
        zone.managers.append(user)
