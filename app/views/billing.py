"""Back office billing (账务): billing runs with preview and progress, bills, adjustments, voids,
one-off charges. Views are thin: parse the form, call the service, commit once, show the outcome."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, FieldList, FormField, SelectField, StringField, TextAreaField
from wtforms import validators
from wtforms.form import Form

from app.extensions import db
from app.models import Bill, BillingRun, Charge, FeeItem, Lease, Market, Merchant
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, RunStatus
from app.models.latefees import LateFeeAccrual, LateFeeWaiver
from app.models.payments import Payment, PaymentAllocation
from app.models.readings import MeterReading
from app.services import billing, billing_corrections, charges, latefees
from app.services.exceptions import DomainError
from app.services.scope import ZoneScopeFilter, scope_query, visible_zone_ids
from app.utils.dates import format_local, parse_period, period_str, today_local
from app.utils.money import format_yuan, parse_yuan
from app.views.base import OverdueRowsMixin, ScopedModelView

PREVIEW_PAGE_SIZE = 20
MISSING_SHOWN = 200


def _period(value):
    return period_str(value) if value else ""


def _domain_flash(exc: DomainError):
    flash(exc.message, "danger")


# --------------------------------------------------------------------------------------------
# Billing runs: choose a period, preview, post (the job), follow progress
# --------------------------------------------------------------------------------------------


class RunForm(FlaskForm):
    """The period form of the runs and preview pages (its CSRF token protects Preview and Post)."""

    market_id = StringField(validators=[validators.InputRequired()])
    period = StringField(validators=[validators.InputRequired()])
    issue_date = StringField(validators=[validators.Optional()])


class BillingRunView(BaseView):
    """The billing runs page (账期出账): preview and post a market's bills for a period."""

    route_base = "/billing/runs"
    default_view = "list"

    def _markets(self):
        return db.session.scalars(sa.select(Market).order_by(Market.code)).all()

    def _market(self, market_id):
        market = db.session.get(Market, market_id) if market_id else None
        if market is None:
            markets = self._markets()
            market = markets[0] if markets else None
        return market

    @expose("/")
    @has_access
    def list(self):
        """Runs of a market, newest period first, with the period form and progress bars."""
        market = self._market(request.args.get("market_id", type=int))
        runs = billing.runs_for_market(market.id) if market else []
        today = today_local()
        sm = self.appbuilder.sm
        return self.render_template(
            "billing/runs.html",
            title=_("Billing runs"),
            markets=self._markets(),
            market=market,
            runs=runs,
            default_period=request.args.get("period") or period_str(today.replace(day=1)),
            watch=request.args.get("run", type=int),
            can_preview=sm.has_access("can_preview", "BillingRunView"),
            can_post=sm.has_access("can_post", "BillingRunView"),
            form=RunForm(),
            format_yuan=format_yuan,
            period_str=period_str,
        )

    def _form_period(self):
        market = self._market(request.form.get("market_id", type=int))
        if market is None:
            abort(404)
        form = RunForm()
        if not form.validate():
            flash("表单已过期或不完整，请刷新页面后重试", "danger")
            return market, None
        try:
            period = parse_period(request.form.get("period", ""))
        except ValueError as exc:
            flash(str(exc), "danger")
            return market, None
        return market, period

    @expose("/preview", methods=["POST"])
    @has_access
    def preview(self):
        """Compute the period's bills into the staging table (nothing is posted) and show them."""
        market, period = self._form_period()
        if period is None:
            return redirect(url_for(".list", market_id=market.id))
        try:
            billing.preview_billing(market.id, period)
        except DomainError as exc:
            db.session.rollback()
            _domain_flash(exc)
            return redirect(url_for(".list", market_id=market.id))
        db.session.commit()
        return redirect(url_for(".show", market_id=market.id, period=period_str(period)))

    @expose("/preview/<int:market_id>/<period>")
    @has_access
    def show(self, market_id, period):
        """The preview page: overall and per-zone totals, bills with every line (paged), missing readings."""
        market = db.session.get(Market, market_id) or abort(404)
        try:
            period_day = parse_period(period)
        except ValueError:
            abort(404)
        zone_ids = visible_zone_ids(current_user)
        batch = billing.latest_preview_batch(market.id, period_day)
        page = max(request.args.get("page", 0, type=int), 0)
        summary = billing.summarize_batch(batch, zone_ids) if batch else None
        bills = billing.staged_bills(batch, page, PREVIEW_PAGE_SIZE, zone_ids) if batch else []
        missing = billing.missing_readings(market.id, period_day, zone_ids)
        run = db.session.scalar(
            sa.select(BillingRun).where(BillingRun.market_id == market.id, BillingRun.period == period_day)
        )
        pages = ((summary.bills + PREVIEW_PAGE_SIZE - 1) // PREVIEW_PAGE_SIZE) if summary else 0
        return self.render_template(
            "billing/preview.html",
            title=_("Billing preview"),
            market=market,
            period=period,
            summary=summary,
            bills=bills,
            page=page,
            pages=pages,
            missing=missing[:MISSING_SHOWN],
            missing_count=len(missing),
            run=run,
            restricted=zone_ids is not None,
            can_post=self.appbuilder.sm.has_access("can_post", "BillingRunView"),
            form=RunForm(),
            kind_labels=KIND_LABELS,
            format_yuan=format_yuan,
        )

    @expose("/post", methods=["POST"])
    @has_access
    def post(self):
        """Post the period: create the run and enqueue its job (inline in embedded mode)."""
        from jobs.billing import ACTIVE_STATUSES, enqueue_billing_run, job_status

        market, period = self._form_period()
        if period is None:
            return redirect(url_for(".list", market_id=market.id))
        issue_text = (request.form.get("issue_date") or "").strip()
        try:
            issue = date.fromisoformat(issue_text) if issue_text else None
        except ValueError:
            flash("开票日期格式应为 YYYY-MM-DD", "danger")
            return redirect(url_for(".list", market_id=market.id))
        existing = db.session.scalar(
            sa.select(BillingRun).where(BillingRun.market_id == market.id, BillingRun.period == period)
        )
        if existing is not None and existing.job_id and job_status(existing.job_id) in ACTIVE_STATUSES:
            flash(f"{period_str(period)} 正在出账，请等待完成", "warning")
            return redirect(url_for(".list", market_id=market.id, run=existing.id))
        try:
            run = billing.request_billing_run(market.id, period, user_id=current_user.id, issue_date=issue)
        except DomainError as exc:
            db.session.rollback()
            _domain_flash(exc)
            return redirect(url_for(".list", market_id=market.id))
        db.session.commit()
        run_id = run.id
        enqueue_billing_run(run_id)
        db.session.expire_all()
        run = db.session.get(BillingRun, run_id)
        if run.status == RunStatus.posted:
            flash((run.report or {}).get("message") or "出账完成", "success")
        elif run.status == RunStatus.failed:
            flash(run.error or "出账失败", "danger")
        else:
            flash(f"已提交 {period_str(period)} 出账任务", "info")
        return redirect(url_for(".list", market_id=market.id, run=run_id))

    @expose("/<int:run_id>/progress")
    @has_access
    def progress(self, run_id):
        """JSON progress of a run (polled by the runs page)."""
        run = db.session.get(BillingRun, run_id) or abort(404)
        report = run.report or {}
        return jsonify({
            "id": run.id,
            "period": period_str(run.period),
            "status": run.status.value,
            "status_label": str(run.status.label),
            "done": run.progress_done,
            "total": run.progress_total,
            "bill_count": run.bill_count,
            "total_fen": run.total_fen,
            "total_text": format_yuan(run.total_fen or 0),
            "message": report.get("message") or "",
            "missing_readings": report.get("missing_readings", 0),
            "error": run.error or "",
            "finished": run.status in (RunStatus.posted, RunStatus.failed),
        })


KIND_LABELS = {
    "fixed": "固定费用",
    "per_area": "按面积",
    "metered": "计量（水电）",
    "public": "公摊",
    "charge": "一次性费用",
}


# --------------------------------------------------------------------------------------------
# Bills
# --------------------------------------------------------------------------------------------


class AdjustmentLineForm(Form):
    description = StringField(_("Description"), [validators.Optional(), validators.Length(max=200)])
    amount = StringField(_("Amount (yuan, negative for a credit)"), [validators.Optional()])


class AdjustmentForm(FlaskForm):
    reason = TextAreaField(_("Reason"), [validators.InputRequired(), validators.Length(max=300)])
    lines = FieldList(FormField(AdjustmentLineForm), min_entries=4)


class VoidForm(FlaskForm):
    reason = TextAreaField(_("Reason"), [validators.InputRequired(), validators.Length(max=300)])


class ReadingAdjustForm(FlaskForm):
    reason = StringField(_("Reason"), [validators.InputRequired(), validators.Length(max=300)])


BILL_LABELS = {
    "number": _("Bill number"),
    "kind": _("Bill kind"),
    "status": _("Status"),
    "merchant": _("Merchant"),
    "lease": _("Lease"),
    "zone": _("Zone"),
    "period": _("Period"),
    "issue_date": _("Issue date"),
    "due_date": _("Due date"),
    "amount_fen": _("Amount"),
    "paid_fen": _("Paid"),
    "late_fee_fen": _("Late fee"),
    "outstanding_fen": _("Outstanding"),
    "run": _("Billing run"),
    "adjusts": _("Adjusts bill"),
    "void_reason": _("Void reason"),
    "note": _("Note"),
    "created_dt": _("Created"),
    "description": _("Description"),
    "amount": _("Amount"),
    "bill": _("Bill"),
    "fee_item": _("Fee item"),
}


class BillView(OverdueRowsMixin, ScopedModelView):
    """Bills (账单), zone-scoped; overdue rows in red; detail page with lines, payments and late fees."""

    datamodel = SQLAInterface(Bill)
    list_title = _("Bills")
    show_title = _("Bill")
    label_columns = BILL_LABELS
    list_columns = [
        "number", "merchant", "zone", "period", "kind", "status", "amount_fen", "paid_fen", "late_fee_fen",
        "outstanding_fen", "due_date",
    ]
    export_columns = [
        "number", "merchant", "lease", "zone", "period", "kind", "status", "amount_fen", "paid_fen",
        "late_fee_fen", "outstanding_fen", "issue_date", "due_date", "void_reason",
    ]
    search_columns = ["period", "status", "zone", "merchant", "kind", "number", "due_date", "lease"]
    order_columns = ["number", "period", "amount_fen", "due_date", "status"]
    base_order = ("id", "desc")
    base_permissions = ["can_list", "can_show", "can_export", "can_void", "can_adjust"]
    row_kind = "bill"
    overdue_legend = _("Red: overdue (past the due date and not fully paid)")
    formatters_columns = {"period": _period}  # money columns: yuan, from ScopedModelView
    search_form_query_rel_fields = {
        "zone": [["id", ZoneScopeFilter, lambda: None]],
        "merchant": [["id", ZoneScopeFilter, lambda: None]],
        "lease": [["id", ZoneScopeFilter, lambda: None]],
    }
    method_permission_name = {"adjust_reading": "adjust"}

    def overdue_condition(self):
        return billing.overdue_clause()

    def _bill_or_404(self, pk) -> Bill:
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        return item

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """A bill with its lines, payments, late fees, adjustments and voiding."""
        bill = self._bill_or_404(pk)
        allocations = db.session.execute(
            sa.select(PaymentAllocation, Payment)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(PaymentAllocation.bill_id == bill.id)
            .order_by(Payment.paid_dt, Payment.id)
        ).all()
        accrued = db.session.execute(
            sa.select(sa.func.count(LateFeeAccrual.id), sa.func.coalesce(sa.func.sum(LateFeeAccrual.amount_fen), 0),
                      sa.func.min(LateFeeAccrual.accrual_date), sa.func.max(LateFeeAccrual.accrual_date))
            .where(LateFeeAccrual.bill_id == bill.id)
        ).one()
        waivers = db.session.scalars(
            sa.select(LateFeeWaiver).where(LateFeeWaiver.bill_id == bill.id).order_by(LateFeeWaiver.id)
        ).all()
        adjustments = db.session.scalars(
            sa.select(Bill).where(Bill.adjusts_bill_id == bill.id).order_by(Bill.id)
        ).all()
        reading_ids = [line.reading_id for line in bill.lines if line.reading_id and line.meter_id]
        corrected = {}
        if reading_ids:
            for reading in db.session.scalars(sa.select(MeterReading).where(MeterReading.id.in_(reading_ids))):
                corrected[reading.id] = reading
        sm = self.appbuilder.sm
        is_overdue = db.session.scalar(sa.select(Bill.id).where(Bill.id == bill.id, billing.overdue_clause()))
        is_open = bill.status in OPEN_BILL_STATUSES
        return self.render_template(
            "billing/bill_show.html",
            title=bill.number,
            bill=bill,
            allocations=allocations,
            accrued=accrued,
            waivers=waivers,
            adjustments=adjustments,
            readings=corrected,
            is_overdue=bool(is_overdue),
            can_void=sm.has_access("can_void", "BillView") and billing_corrections.is_voidable(bill),
            can_receipt=(sm.has_access("can_download", "ReceiptView") and bill.status == BillStatus.paid
                         and bool(bill.receipt_no)),
            can_waive=sm.has_access("can_waive", "LateFeeView") and is_open and latefees.waivable_fen(bill) > 0,
            can_record_payment=(sm.has_access("can_record", "OfflinePaymentView") and is_open
                                and bill.outstanding_fen > 0),
            can_adjust=sm.has_access("can_adjust", "BillView") and bill.status not in (BillStatus.void, BillStatus.draft),
            reading_form=ReadingAdjustForm(),
            format_yuan=format_yuan,
            format_local=format_local,
            period_str=period_str,
        )

    @expose("/void/<pk>", methods=["GET", "POST"])
    @has_access
    def void(self, pk):
        """Void a bill with a reason."""
        bill = self._bill_or_404(pk)
        form = VoidForm()
        if request.method == "POST":
            try:
                billing_corrections.void_bill(bill.id, form.reason.data, user=current_user)
            except DomainError as exc:
                db.session.rollback()
                _domain_flash(exc)
            else:
                db.session.commit()
                flash(f"账单 {bill.number} 已作废", "success")
                return redirect(url_for(".show", pk=bill.id))
        return self.render_template("billing/void.html", title=_("Void bill"), bill=bill, form=form,
                                    format_yuan=format_yuan)

    @expose("/adjust/<pk>", methods=["GET", "POST"])
    @has_access
    def adjust(self, pk):
        """Create an adjustment bill for a posted bill (lines with positive or negative amounts)."""
        bill = self._bill_or_404(pk)
        form = AdjustmentForm()
        if request.method == "POST":
            lines, errors = [], []
            for index, entry in enumerate(form.lines.entries, start=1):
                text = (entry.form.description.data or "").strip()
                amount = (entry.form.amount.data or "").strip()
                if not text and not amount:
                    continue
                try:
                    fen = parse_yuan(amount, allow_negative=True)
                except ValueError as exc:
                    errors.append(f"第 {index} 行：{exc}")
                    continue
                lines.append(billing_corrections.AdjustmentLine(description=text, amount_fen=fen))
            if errors:
                for error in errors:
                    flash(error, "danger")
            else:
                try:
                    new = billing_corrections.create_adjustment_bill(bill.id, lines, form.reason.data, user=current_user)
                except DomainError as exc:
                    db.session.rollback()
                    _domain_flash(exc)
                else:
                    db.session.commit()
                    flash(f"已生成调整账单 {new.number}（{format_yuan(new.amount_fen)}）", "success")
                    return redirect(url_for(".show", pk=new.id))
        return self.render_template("billing/adjust.html", title=_("Adjustment bill"), bill=bill, form=form,
                                    format_yuan=format_yuan)

    @expose("/adjust-reading/<pk>/<int:reading_id>", methods=["POST"])
    @has_access
    def adjust_reading(self, pk, reading_id):
        """Bill a corrected meter reading of this bill as an adjustment bill."""
        bill = self._bill_or_404(pk)
        form = ReadingAdjustForm()
        try:
            new = billing_corrections.adjust_for_reading(reading_id, form.reason.data, user=current_user)
        except DomainError as exc:
            db.session.rollback()
            _domain_flash(exc)
            return redirect(url_for(".show", pk=bill.id))
        db.session.commit()
        flash(f"已生成调整账单 {new.number}（{format_yuan(new.amount_fen)}）", "success")
        return redirect(url_for(".show", pk=new.id))


# --------------------------------------------------------------------------------------------
# One-off charges (费用录入)
# --------------------------------------------------------------------------------------------


class ChargeForm(FlaskForm):
    merchant_code = StringField(_("Merchant code"), [validators.InputRequired(), validators.Length(max=32)])
    lease_code = StringField(_("Lease code (optional)"), [validators.Optional(), validators.Length(max=32)])
    fee_item_id = SelectField(_("Fee item"), coerce=int, default=0)
    description = StringField(_("Description"), [validators.InputRequired(), validators.Length(max=200)])
    amount = StringField(_("Amount (yuan)"), [validators.InputRequired()])
    bill_now = BooleanField(_("Bill now (an ad-hoc bill at once)"))
    issue_date = DateField(_("Issue date"), validators=[validators.Optional()])


#: Merchants offered as suggestions under the merchant code field.
MERCHANT_SUGGESTIONS = 2000


class CancelForm(FlaskForm):
    reason = TextAreaField(_("Reason"), [validators.InputRequired(), validators.Length(max=300)])


class ChargeView(ScopedModelView):
    """One-off charges: list, add (billed with the next run or at once), bill now, cancel."""

    datamodel = SQLAInterface(Charge)
    list_title = _("One-off charges")
    show_title = _("One-off charge")
    label_columns = {
        "created_dt": _("Created"),
        "merchant": _("Merchant"),
        "lease": _("Lease"),
        "zone": _("Zone"),
        "fee_item": _("Fee item"),
        "description": _("Description"),
        "amount_fen": _("Amount"),
        "status": _("Status"),
        "bill": _("Bill"),
    }
    list_columns = ["created_dt", "merchant", "zone", "description", "amount_fen", "status", "bill"]
    show_columns = ["created_dt", "merchant", "lease", "zone", "fee_item", "description", "amount_fen", "status", "bill"]
    search_columns = ["merchant", "zone", "status", "description", "created_dt"]
    base_order = ("id", "desc")
    base_permissions = ["can_list", "can_show", "can_export", "can_new", "can_cancel"]
    list_template = "billing/charge_list.html"

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        """Add a one-off charge for a merchant of the user's zones."""
        form = ChargeForm()
        items = db.session.scalars(sa.select(FeeItem).where(FeeItem.is_active.is_(True)).order_by(FeeItem.sort_order)).all()
        form.fee_item_id.choices = [(0, "—")] + [(item.id, item.name) for item in items]
        suggestions = db.session.execute(
            scope_query(sa.select(Merchant.code, Merchant.name).order_by(Merchant.code), Merchant)
            .limit(MERCHANT_SUGGESTIONS)
        ).all()
        if request.method == "POST" and form.validate_on_submit():
            charge = self._add_charge(form)
            if charge is not None:
                return redirect(url_for(".list"))
        elif request.method == "POST":
            for field, errors in form.errors.items():
                for error in errors:
                    flash(f"{getattr(form, field).label.text}：{error}", "danger")
        return self.render_template("billing/charge_add.html", title=_("Add one-off charge"), form=form,
                                    suggestions=suggestions)

    def _add_charge(self, form):
        """Resolve the typed codes within the user's zones, call the service, commit; None on error."""
        merchant = db.session.scalar(scope_query(
            sa.select(Merchant).where(Merchant.code == form.merchant_code.data.strip()), Merchant))
        if merchant is None:
            flash(f"找不到商户编号 {form.merchant_code.data}（或不在您负责的片区）", "danger")
            return None
        lease_id = None
        if (form.lease_code.data or "").strip():
            lease = db.session.scalar(scope_query(
                sa.select(Lease).where(Lease.code == form.lease_code.data.strip(), Lease.merchant_id == merchant.id),
                Lease))
            if lease is None:
                flash(f"商户 {merchant.name} 没有租约 {form.lease_code.data}", "danger")
                return None
            lease_id = lease.id
        try:
            amount = parse_yuan(form.amount.data or "")
            charge = charges.add_charge(
                merchant.id, amount, form.description.data, lease_id=lease_id,
                fee_item_id=form.fee_item_id.data or None, user=current_user, bill_now=form.bill_now.data,
                issue_date=form.issue_date.data,
            )
        except ValueError as exc:
            flash(str(exc), "danger")
            return None
        except DomainError as exc:
            db.session.rollback()
            _domain_flash(exc)
            return None
        db.session.commit()
        if charge.bill_id:
            flash(f"已录入费用并立即出账：账单 {charge.bill.number}", "success")
        else:
            flash("已录入费用，将随下次出账一并收取", "success")
        return charge

    @action("bill_now", _("Bill now"), _("Bill the selected pending charges now (ad-hoc bills)?"), "fa-bolt",
            single=False)
    def bill_now(self, items):
        """Bill the selected pending charges at once."""
        ids = [item.id for item in items if item is not None]
        try:
            bills = charges.bill_charges_now(ids, user=current_user)
        except DomainError as exc:
            db.session.rollback()
            _domain_flash(exc)
        else:
            db.session.commit()
            flash("已出账：" + "、".join(b.number for b in bills), "success")
        return redirect(url_for(".list"))

    @expose("/cancel/<pk>", methods=["GET", "POST"])
    @has_access
    def cancel(self, pk):
        """Cancel a pending charge with a reason."""
        charge = self.datamodel.get(pk, self._base_filters) or abort(404)
        form = CancelForm()
        if request.method == "POST":
            try:
                charges.cancel_charge(charge.id, form.reason.data, user=current_user)
            except DomainError as exc:
                db.session.rollback()
                _domain_flash(exc)
            else:
                db.session.commit()
                flash("费用已取消", "success")
                return redirect(url_for(".list"))
        return self.render_template("billing/charge_cancel.html", title=_("Cancel charge"), charge=charge,
                                    form=form, format_yuan=format_yuan)


__all__ = ["BillingRunView", "BillView", "ChargeView"]
