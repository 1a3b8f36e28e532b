"""Finance alerts (财务告警): newest first, unacknowledged in red, delivery status, acknowledge, link to the cause."""
from __future__ import annotations

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _

from app.extensions import db
from app.models.alerts import DeliveryStatus, FinanceAlert
from app.services import alerts
from app.services.exceptions import DomainError
from app.views.wechatpay import _check_csrf, _helpers, _paged, _user_id


def unacknowledged_alert_count() -> int:
    """For the banner on the Finance pages (a Jinja global)."""
    return alerts.unacknowledged_count()


class FinanceAlertView(BaseView):
    """Alerts raised for Finance, with their WeCom delivery and who acknowledged them."""

    route_base = "/finance/alerts"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        show_all = request.args.get("all") == "1"
        stmt = sa.select(FinanceAlert).order_by(FinanceAlert.created_dt.desc(), FinanceAlert.id.desc())
        if not show_all:
            stmt = stmt.where(FinanceAlert.acknowledged_dt.is_(None))
        rows, pager = _paged(stmt)
        return self.render_template(
            "alerts/index.html", title=_("Finance alerts"), rows=rows, show_all=show_all,
            channel_ready=alerts.channels_configured(), statuses=DeliveryStatus,
            max_attempts=alerts.MAX_ATTEMPTS, pager=pager, **_helpers(),
        )

    @expose("/<int:alert_id>/acknowledge", methods=["POST"])
    @has_access
    def acknowledge(self, alert_id):
        _check_csrf()
        try:
            alerts.acknowledge_alert(alert_id, _user_id())
            db.session.commit()
            flash(_("Alert acknowledged."), "success")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(url_for(".index", all=request.args.get("all") or None))

    @expose("/retry", methods=["POST"])
    @has_access
    def retry(self):
        """Queue the retry of undelivered alerts now (run in-process in the embedded mode)."""
        _check_csrf()
        from app.queues import get_queue
        from jobs.alerts import QUEUE, retry_finance_alerts_job

        if not alerts.channels_configured():
            flash(_("No alert channel is configured (FINANCE_ALERT_WEBHOOK_URL): alerts are only shown here."),
                  "warning")
            return redirect(url_for(".index"))
        get_queue(QUEUE).enqueue(retry_finance_alerts_job)
        flash(_("Undelivered alerts are being sent again."), "info")
        return redirect(url_for(".index"))
