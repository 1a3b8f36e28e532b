"""The daily task list: the landing page after login."""
from datetime import timedelta

from flask import current_app, request
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _
from flask_login import current_user

from app.services.tasks import EXPIRY_WARNING_DAYS, build_task_list
from app.utils.dates import parse_period, period_str
from app.utils.money import format_yuan


class TaskListView(BaseView):
    route_base = "/tasks"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        """Meters to read, overdue merchants, open tickets and leases to renew, in the user's zones.

        ?period=YYYY-MM shows the meters still to read for another period (default: this month).
        """
        try:
            period = parse_period(request.args.get("period", ""))
        except ValueError:
            period = None
        tasks = build_task_list(current_user, period=period)
        sm = self.appbuilder.sm
        can = {name: sm.has_access("can_list", name) for name in ("MeterView", "MerchantView", "LeaseView")}
        can["bills"] = "BillView.list" in current_app.view_functions and sm.has_access("can_list", "BillView")
        # Meter rows open the reading entry form when the readings pages are there and allowed.
        for permission, endpoint in (("can_enter", "enter"), ("can_list", "list")):
            can[f"readings_{endpoint}"] = (
                f"ReadingImportView.{endpoint}" in current_app.view_functions
                and sm.has_access(permission, "ReadingImportView")
            )
        return self.render_template(
            "tasks/index.html",
            title=_("Daily tasks"),
            tasks=tasks,
            can=can,
            period_label=period_str(tasks.period),
            expiry_days=EXPIRY_WARNING_DAYS,
            expiring_until=tasks.today + timedelta(days=EXPIRY_WARNING_DAYS + 1),
            day_before=tasks.today - timedelta(days=1),
            # Bill list filters for "open and due before today" (FAB filters: status not draft/paid/void).
            overdue_bill_filter=(
                "_flt_1_status=draft&_flt_1_status=paid&_flt_1_status=void"
                f"&_flt_2_due_date={tasks.today.isoformat()}"
            ),
            format_yuan=format_yuan,
        )
