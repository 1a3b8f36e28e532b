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

# WeChat Pay back office (Finance): orders, notifications, reconciliation, refunds, finance alerts.
WECHATPAY_VIEWS = r"^(PayOrderList|PayNotificationList|TradeBillMismatch|WeChatRefund|FinanceAlert)View$"
WECHATPAY_MENUS = r"^(WeChat Pay|Online orders|Pay notifications|Reconciliation|WeChat refunds|Finance alerts)$"

ROLES = {
    ADMIN: [[r".*", r".*"]],
    LEADER: [
        [MASTER_DATA, READ],
        [r"^(StallMapView|TaskListView|AuditLogView)$", r".*"],
        [MASTER_MENUS, MENU],
        *SELF_SERVICE,
    ],
    MANAGER: [
        [r"^(MerchantBindingView|StallQrView)$", r"^(can_list|can_show|can_export|can_revoke|can_index|can_unit|can_zone)$"],
        [r"^(WeChat bindings|Stall QR codes)$", MENU],
        [MASTER_DATA, READ],
        [r"^(Unit|Merchant|Lease|LeaseFee|Meter|MeterReplacement)(View|Api)$", WRITE],
        [r"^(StallMapView|TaskListView)$", r".*"],
        [r"^(Market|Zones|Units|Merchants|Leases|Lease fees|Meters|Meter replacements|Stall map|Daily tasks|Operations)$", MENU],
        *SELF_SERVICE,
    ],
    CLERK: [
        [MASTER_DATA, READ],
        [r"^(Meter|MeterReplacement)(View|Api)$", WRITE],
        [r"^(TaskListView|StallMapView)$", r".*"],
        [r"^(Market|Zones|Units|Merchants|Leases|Meters|Meter replacements|Stall map|Daily tasks|Operations)$", MENU],
        *SELF_SERVICE,
    ],
    FINANCE: [
        [MASTER_DATA, READ],
        [WECHATPAY_VIEWS, r".*"],
        [WECHATPAY_MENUS, MENU],
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


# Meter readings and imports. Clerk and Manager import and type in readings (a Manager only for
# the meters of their zones); Leader and Finance see the readings and the import results. The
# onboarding (master data) import is for Admin only.
READING_IMPORT_READ = r"^can_(list|show|status|download|template)$"
READING_MENUS = r"^(Billing|Meter readings|Import readings)$"
for _role in (CLERK, MANAGER):
    ROLES[_role] += [
        [r"^ReadingImportView$", r".*"],
        [r"^MeterReadingView$", READ],
        [READING_MENUS, MENU],
        [r"^Enter reading$", MENU],
    ]
for _role in (LEADER, FINANCE):
    ROLES[_role] += [
        [r"^ReadingImportView$", READING_IMPORT_READ],
        [r"^MeterReadingView$", READ],
        [READING_MENUS, MENU],
    ]


# Billing (账务). Manager: preview and post runs, add and bill one-off charges (their zones);
# Finance: everything readable, plus voids (with a reason) and adjustment bills; Leader reads;
# Clerk sees the runs page (to chase the meters without a reading).
BILLING_READ = r"^(can_list|can_show|can_export|can_progress)$"
ROLES[MANAGER] += [
    [r"^BillingRunView$", r"^(can_list|can_show|can_progress|can_preview|can_post)$"],
    [r"^BillView$", BILLING_READ],
    [r"^ChargeView$", r"^(can_list|can_show|can_export|can_new|can_cancel|bill_now)$"],
    [r"^(Billing|Billing runs|Bills|One-off charges)$", MENU],
]
ROLES[FINANCE] += [
    [r"^(BillingRunView|ChargeView)$", BILLING_READ],
    [r"^BillView$", r"^(can_list|can_show|can_export|can_void|can_adjust)$"],
    [r"^(Billing|Billing runs|Bills|One-off charges)$", MENU],
]
ROLES[LEADER] += [
    [r"^(BillingRunView|BillView|ChargeView)$", BILLING_READ],
    [r"^(Billing|Billing runs|Bills|One-off charges)$", MENU],
]
ROLES[CLERK] += [
    [r"^BillingRunView$", BILLING_READ],
    [r"^(Billing|Billing runs)$", MENU],
]


# Late fees, payments and receipts. Finance: rule versions, waivers, offline payments (cash, bank
# transfer); Leader reads everything; Manager reads within their zones (scoped in the views).
MONEY_VIEWS = r"^(PaymentView|RefundView|LateFeeRuleView|LateFeeAccrualView|LateFeeWaiverView)$"
MONEY_MENUS = r"^(Billing|Payments|Late fees|Late-fee rules)$"
for _role in (LEADER, MANAGER):
    ROLES[_role] += [
        [MONEY_VIEWS, READ],
        [r"^LateFeeView$", r"^can_(list|preview)$"],
        [r"^ReceiptView$", r"^can_download$"],
        [MONEY_MENUS, MENU],
    ]
ROLES[FINANCE] += [
    [MONEY_VIEWS, READ],
    [r"^LateFeeRuleView$", r"^can_add$"],
    [r"^(LateFeeView|OfflinePaymentView|OfflineRefundView|ReceiptView)$", r".*"],
    [r"^(Billing|Payments|Record payment|Late fees|Late-fee rules)$", MENU],
]


# Tickets (工单). Manager (their zones) and Admin handle them: accept and assign, progress, resolve,
# close suggestions; a Repairer sees the tickets assigned to them, adds progress and resolves them;
# Leader reads. Clerk and Finance have no access. Which tickets: app.services.tickets.visible_tickets_clause.
TICKET_READ = r"^can_(list|show|export|photo)$"
TICKET_MENUS = r"^(Operations|Tickets)$"
ROLES[MANAGER] += [
    [r"^TicketView$", r"^can_(list|show|export|photo|assign|progress|resolve|close)$"],
    [TICKET_MENUS, MENU],
]
ROLES[REPAIRER] += [
    [r"^TicketView$", r"^can_(list|show|export|photo|progress|resolve)$"],
    [TICKET_MENUS, MENU],
]
ROLES[LEADER] += [
    [r"^TicketView$", TICKET_READ],
    [TICKET_MENUS, MENU],
]
