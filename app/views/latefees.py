"""Back office late fees (滞纳金): rule versions, the accrual preview, bills with late fees, waivers.

Views are thin: parse the form, call app.services.latefees, commit once, show the outcome.
"""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField, validators

from app.extensions import db
from app.models import Bill, Lease, Market, Merchant
from app.models.enums import OPEN_BILL_STATUSES
from app.models.latefees import LateFeeAccrual, LateFeeRule, LateFeeRun, LateFeeWaiver
from app.services import latefees
from app.services.exceptions import DomainError
from app.services.scope import ZoneScopeFilter, can_see_zone, scope_query, visible_zone_ids
from app.utils.dates import format_local, today_local
from app.utils.money import fen_to_yuan_str, format_yuan, parse_yuan
from app.views.base import ScopedModelView

OVERVIEW_ROWS = 100


def _markets():
    return db.session.scalars(sa.select(Market).order_by(Market.code)).all()


def _market(market_id):
    market = db.session.get(Market, market_id) if market_id else None
    if market is None:
        markets = _markets()
        market = markets[0] if markets else None
    return market


LABELS = {
    "lease": _("Lease"),
    "effective_from": _("Effective from"),
    "daily_rate": _("Daily rate"),
    "grace_days": _("Grace days"),
    "cap_fen": _("Cap"),
    "cap_percent": _("Cap (percent of principal)"),
    "is_active": _("Active"),
    "note": _("Note"),
    "market": _("Market"),
    "created_dt": _("Created"),
    "bill": _("Bill"),
    "rule": _("Rule version"),
    "accrual_date": _("Day"),
    "principal_fen": _("Unpaid principal"),
    "amount_fen": _("Amount"),
    "cumulative_fen": _("Accrued so far"),
    "reason": _("Reason"),
    "created_by": _("By"),
}


class RuleForm(FlaskForm):
    lease_id = SelectField(_("Applies to"), coerce=int, default=0)
    effective_from = DateField(_("Effective from"), validators=[validators.InputRequired()])
    daily_rate = StringField(_("Daily rate"), validators=[validators.InputRequired()], default="0.0005")
    grace_days = IntegerField(_("Grace days"), default=0, validators=[validators.NumberRange(min=0, max=365)])
    cap_yuan = StringField(_("Cap (yuan)"))
    cap_percent = StringField(_("Cap (percent of principal)"))
    is_active = BooleanField(_("Charge late fees"), default=True)
    note = StringField(_("Note"), validators=[validators.Length(max=200)])


class WaiverForm(FlaskForm):
    amount = StringField(_("Amount to waive (yuan)"), validators=[validators.InputRequired()])
    reason = TextAreaField(_("Reason"), validators=[validators.InputRequired(), validators.Length(max=300)])


class LateFeeRuleView(ScopedModelView):
    """Late-fee rule versions (market-wide and per-lease overrides); a change is a new version."""

    datamodel = SQLAInterface(LateFeeRule)
    list_title = _("Late-fee rules")
    show_title = _("Late-fee rule")
    add_title = _("New late-fee rule version")
    label_columns = LABELS
    list_columns = ["lease", "effective_from", "daily_rate", "grace_days", "cap_fen", "cap_percent", "is_active",
                    "note"]
    show_columns = ["market", "lease", "effective_from", "daily_rate", "grace_days", "cap_fen", "cap_percent",
                    "is_active", "note", "created_dt"]
    search_columns = ["lease", "effective_from", "is_active"]
    base_order = ("effective_from", "desc")
    base_permissions = ["can_list", "can_show", "can_add", "can_export"]
    formatters_columns = {"lease": lambda lease: lease.code if lease else "全市场（默认）"}

    @expose("/add/", methods=["GET", "POST"])
    @has_access
    def add(self):
        """Add a rule version through app.services.latefees.create_rule (rules are never edited)."""
        market = _market(request.values.get("market_id", type=int))
        if market is None:
            abort(404)
        form = RuleForm()
        leases = scope_query(sa.select(Lease).where(Lease.market_id == market.id).order_by(Lease.code), Lease)
        form.lease_id.choices = [(0, "全市场（默认规则）")] + [
            (lease.id, f"{lease.code} · {lease.merchant.name}") for lease in db.session.scalars(leases)
        ]
        if request.method == "GET" and form.effective_from.data is None:
            last = latefees.last_accrued_day(market.id)
            form.effective_from.data = max(today_local(), last + timedelta(days=1)) if last else today_local()
        if request.method == "POST" and form.validate():
            try:
                cap_fen = parse_yuan(form.cap_yuan.data) if (form.cap_yuan.data or "").strip() else None
                rule = latefees.create_rule(
                    market.id, form.effective_from.data, form.daily_rate.data, grace_days=form.grace_days.data,
                    cap_fen=cap_fen, cap_percent=(form.cap_percent.data or "").strip().rstrip("%") or None,
                    lease_id=form.lease_id.data or None, is_active=form.is_active.data, note=form.note.data,
                )
            except (DomainError, ValueError, ArithmeticError) as exc:
                db.session.rollback()
                flash(getattr(exc, "message", None) or f"输入有误：{exc}", "danger")
            else:
                db.session.commit()
                flash(f"已新增滞纳金规则版本，自 {rule.effective_from.isoformat()} 起生效", "success")
                return redirect(url_for(".list"))
        return self.render_template("latefees/rule_form.html", title=self.add_title, form=form, market=market,
                                    last_day=latefees.last_accrued_day(market.id))


class LateFeeAccrualView(ScopedModelView):
    """Daily late-fee accrual rows (read only)."""

    datamodel = SQLAInterface(LateFeeAccrual)
    list_title = _("Late-fee accruals")
    show_title = _("Late-fee accrual")
    label_columns = LABELS
    list_columns = ["accrual_date", "bill", "principal_fen", "amount_fen", "cumulative_fen", "rule"]
    show_columns = ["accrual_date", "bill", "rule", "principal_fen", "amount_fen", "cumulative_fen", "cap_fen",
                    "created_dt"]
    search_columns = ["bill", "accrual_date"]
    base_order = ("accrual_date", "desc")
    base_permissions = ["can_list", "can_show", "can_export"]
    search_form_query_rel_fields = {"bill": [["id", ZoneScopeFilter, lambda: None]]}


class LateFeeWaiverView(ScopedModelView):
    """Late-fee waivers (read only; waive from the late fees page)."""

    datamodel = SQLAInterface(LateFeeWaiver)
    list_title = _("Late-fee waivers")
    show_title = _("Late-fee waiver")
    label_columns = LABELS
    list_columns = ["created_dt", "bill", "amount_fen", "reason", "created_by"]
    show_columns = ["created_dt", "bill", "amount_fen", "reason", "created_by"]
    search_columns = ["bill", "created_dt"]
    base_order = ("created_dt", "desc")
    base_permissions = ["can_list", "can_show", "can_export"]
    search_form_query_rel_fields = {"bill": [["id", ZoneScopeFilter, lambda: None]]}


class LateFeeView(BaseView):
    """The late fees page (滞纳金): rule in force, last accrued day, bills carrying late fees, preview, waive."""

    route_base = "/late-fees"
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        """Bills carrying a late fee (the user's zones), with the rule in force and the last accrued day."""
        market = _market(request.args.get("market_id", type=int))
        if market is None:
            return self.render_template("latefees/index.html", title=_("Late fees"), market=None, markets=[])
        today = today_local()
        query = (
            sa.select(Bill, Merchant.name)
            .join(Merchant, Merchant.id == Bill.merchant_id)
            .where(Bill.market_id == market.id, Bill.late_fee_fen > 0)
            .order_by(Bill.late_fee_fen.desc(), Bill.id)
        )
        only_open = request.args.get("all") != "1"
        if only_open:
            query = query.where(Bill.status.in_(OPEN_BILL_STATUSES))
        query = scope_query(query, Bill)
        rows = db.session.execute(query.limit(OVERVIEW_ROWS)).all()
        totals = db.session.execute(
            scope_query(sa.select(sa.func.count(Bill.id), sa.func.coalesce(sa.func.sum(Bill.late_fee_fen), 0))
                        .where(Bill.market_id == market.id, Bill.late_fee_fen > 0,
                               *([Bill.status.in_(OPEN_BILL_STATUSES)] if only_open else [])), Bill)
        ).one()
        runs = db.session.scalars(
            sa.select(LateFeeRun).where(LateFeeRun.market_id == market.id)
            .order_by(LateFeeRun.accrual_date.desc()).limit(10)
        ).all()
        sm = self.appbuilder.sm
        return self.render_template(
            "latefees/index.html",
            title=_("Late fees"),
            market=market,
            markets=_markets(),
            rule=latefees.applicable_rule(market.id, None, today),
            last_day=latefees.last_accrued_day(market.id),
            rows=rows,
            totals=totals,
            runs=runs,
            only_open=only_open,
            today=today,
            can_waive=sm.has_access("can_waive", "LateFeeView"),
            can_add_rule=sm.has_access("can_add", "LateFeeRuleView"),
            format_yuan=format_yuan,
            format_local=format_local,
            waivable_fen=latefees.waivable_fen,
        )

    @expose("/preview/")
    @has_access
    def preview(self):
        """What the accrual through a day would add, computed for real and rolled back (nothing is saved)."""
        market = _market(request.args.get("market_id", type=int))
        if market is None:
            abort(404)
        text = request.args.get("date") or today_local().isoformat()
        try:
            day = date.fromisoformat(text)
        except ValueError:
            flash(f"日期格式应为 YYYY-MM-DD：{text}", "danger")
            return redirect(url_for(".list", market_id=market.id))
        try:
            preview = latefees.preview_late_fees(market.id, day, zone_ids=visible_zone_ids(current_user))
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for(".list", market_id=market.id))
        db.session.rollback()
        return self.render_template(
            "latefees/preview.html",
            title=_("Late-fee preview"),
            market=market,
            day=day,
            preview=preview,
            restricted=visible_zone_ids(current_user) is not None,
            format_yuan=format_yuan,
        )

    @expose("/waive/<int:bill_id>", methods=["GET", "POST"])
    @has_access
    def waive(self, bill_id):
        """Waive all or part of a bill's unpaid late fee, with a reason (audited)."""
        bill = db.session.get(Bill, bill_id)
        if bill is None or not can_see_zone(bill.zone_id):
            abort(404)
        form = WaiverForm()
        available = latefees.waivable_fen(bill)
        if request.method == "GET" and not form.amount.data:
            form.amount.data = fen_to_yuan_str(available) if available else ""
        if request.method == "POST" and form.validate():
            try:
                amount = parse_yuan(form.amount.data)
                latefees.waive_late_fee(bill.id, amount, form.reason.data, user=current_user)
            except ValueError as exc:
                flash(str(exc), "danger")
            except DomainError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
            else:
                db.session.commit()
                flash(f"已减免账单 {bill.number} 的滞纳金 {format_yuan(amount)}", "success")
                if request.args.get("back") == "bill":  # opened from the bill page: back to it
                    return redirect(url_for("BillView.show", pk=bill.id))
                return redirect(url_for(".list", market_id=bill.market_id))
        accruals = db.session.scalars(
            sa.select(LateFeeAccrual).where(LateFeeAccrual.bill_id == bill.id)
            .order_by(LateFeeAccrual.accrual_date.desc()).limit(60)
        ).all()
        waivers = db.session.scalars(
            sa.select(LateFeeWaiver).where(LateFeeWaiver.bill_id == bill.id).order_by(LateFeeWaiver.id)
        ).all()
        return self.render_template("latefees/waive.html", title=_("Waive late fee"), bill=bill, form=form,
                                    available=available, accruals=accruals, waivers=waivers,
                                    format_yuan=format_yuan, format_local=format_local)
