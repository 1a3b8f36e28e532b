"""Roles declared in code and the security manager.

FAB checks builtin roles (FAB_ROLES) by regular expressions over view and
permission names, so no permission rows need syncing. View class names are
stable English keys: <Thing>View for pages, <Thing>Api for the REST API;
menu names are the English keys passed to add_view().
"""
from flask_appbuilder.security.sqla.manager import SecurityManager

ADMIN, LEADER, MANAGER, CLERK, FINANCE, REPAIRER = (
    "Admin",
    "Leader",
    "Manager",
    "Clerk",
    "Finance",
    "Repairer",
)
STAFF_ROLES = (ADMIN, LEADER, MANAGER, CLERK, FINANCE, REPAIRER)
#: Roles that see every zone of the market; a Manager sees only assigned zones.
UNRESTRICTED_ROLES = {ADMIN, LEADER, FINANCE, CLERK}

READ = r"^(can_list|can_show|can_get|can_info|can_export|can_download)$"
WRITE = r"^(can_add|can_edit|can_post|can_put)$"
MENU = r"^menu_access$"
SELF_SERVICE = [
    [r"^(UserInfoEditView|ResetMyPasswordView)$", r"^can_this_form_(get|post)$"],
    [r"^UserDBModelView$", r"^can_userinfo$"],
    [r"^(UserDBModelView|ResetMyPasswordView)$", r"^(resetmypassword)$"],
    [r"^(HomeView|LocaleView)$", r".*"],
]

# Business views by area; each entry lists class names (pages and REST APIs) and menu names.
MASTER_DATA = r"^(Market|Zone|Unit|Merchant|Lease|LeaseFee|FeeItem|FeeTier|Meter|MeterReplacement)(View|Api)$"
MASTER_MENUS = (
    r"^(Market|Markets|Zones|Units|Merchants|Leases|Lease fees|Fee items|Fee tiers|Meters|Meter replacements"
    r"|Stall map|Daily tasks|Audit log|Operations|System)$"
)

ROLES = {
    ADMIN: [[r".*", r".*"]],
    LEADER: [
        [MASTER_DATA, READ],
        [r"^(StallMapView|TaskListView|AuditLogView)$", r".*"],
        [MASTER_MENUS, MENU],
        *SELF_SERVICE,
    ],
    MANAGER: [
        [MASTER_DATA, READ],
        [r"^(Unit|Merchant|Lease|LeaseFee|Meter|MeterReplacement)(View|Api)$", WRITE],
        [r"^(StallMapView|TaskListView)$", r".*"],
        [r"^(Market|Zones|Units|Merchants|Leases|Lease fees|Meters|Meter replacements|Stall map|Daily tasks)$", MENU],
        *SELF_SERVICE,
    ],
    CLERK: [
        [MASTER_DATA, READ],
        [r"^(Meter|MeterReplacement)(View|Api)$", WRITE],
        [r"^(TaskListView|StallMapView)$", r".*"],
        [r"^(Market|Zones|Units|Merchants|Leases|Meters|Meter replacements|Stall map|Daily tasks)$", MENU],
        *SELF_SERVICE,
    ],
    FINANCE: [
        [MASTER_DATA, READ],
        [r"^(TaskListView|StallMapView|AuditLogView)$", r".*"],
        [MASTER_MENUS, MENU],
        *SELF_SERVICE,
    ],
    REPAIRER: [
        [r"^TaskListView$", r".*"],
        [r"^(Operations|Daily tasks)$", MENU],
        *SELF_SERVICE,
    ],
}


class MarketSecurityManager(SecurityManager):
    """FAB's SQLA security manager with the market's roles."""

    def create_builtin_roles(self):
        return ROLES


def user_role_names(user) -> set[str]:
    """The names of a user's roles (empty for anonymous users)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    return {role.name for role in getattr(user, "roles", [])}
