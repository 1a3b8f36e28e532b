"""The audit log, read-only, for Admin and Leader (and Finance)."""
from flask_appbuilder import ModelView
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _

from app.models import AuditLog


class AuditLogView(ModelView):
    datamodel = SQLAInterface(AuditLog)
    list_title = _("Audit log")
    show_title = _("Audit entry")
    base_permissions = ["can_list", "can_show"]
    list_columns = ["created_dt", "username", "action", "table_name", "row_id", "summary", "reason"]
    show_columns = [
        "created_dt", "username", "action", "table_name", "row_id", "summary", "before", "after",
        "reason", "request_id", "market_id",
    ]
    search_columns = ["table_name", "row_id", "action", "username", "created_dt", "request_id"]
    base_order = ("created_dt", "desc")
    page_size = 50
    label_columns = {
        "created_dt": _("Time"),
        "username": _("User"),
        "action": _("Action"),
        "table_name": _("Table"),
        "row_id": _("Row"),
        "summary": _("Summary"),
        "before": _("Before"),
        "after": _("After"),
        "reason": _("Reason"),
        "request_id": _("Request id"),
        "market_id": _("Market"),
    }
