"""Back office payments (收款): list and detail, offline (cash / bank transfer) recording, refunds list,
bill receipt downloads; and the public receipt verification page (/r/<receipt_no>/<signature>).

Views are thin: parse the form, call app.services.payments / receipts, commit once.
"""
from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField, validators

from app.extensions import db
from app.models import Bill, Merchant
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, PaymentMethod
from app.models.payments import Payment, PaymentAllocation, Refund
from app.services import payments as payment_service
from app.services import receipts
from app.services.exceptions import DomainError
from app.services.scope import ZoneScopeFilter, can_see_zone, scope_query
from app.utils.dates import MARKET_TZ, format_local, now_utc, period_str
from app.utils.money import fen_to_yuan_str, format_yuan, parse_yuan
from app.utils.pdf import PdfError
from app.views.base import ScopedModelView


LABELS = {
    "paid_dt": _("Paid at"),
    "receipt_no": _("Receipt no."),
    "merchant": _("Merchant"),
    "zone": _("Zone"),
    "method": _("Method"),
    "status": _("Status"),
    "amount_fen": _("Amount"),
    "refunded_fen": _("Refunded"),
    "transaction_id": _("Reference"),
    "out_trade_no": _("Order no."),
    "note": _("Note"),
    "recorded_by": _("Recorded by"),
    "created_dt": _("Created"),
    "payment": _("Payment"),
    "out_refund_no": _("Refund no."),
    "reason": _("Reason"),
    "succeeded_dt": _("Refunded at"),
    "created_by": _("By"),
}


class PaymentView(ScopedModelView):
    """Payments (收款记录), zone-scoped; the detail page shows allocations, refunds and receipts."""

    datamodel = SQLAInterface(Payment)
    list_title = _("Payments")
    show_title = _("Payment")
    label_columns = LABELS
    list_columns = ["paid_dt", "receipt_no", "merchant", "zone", "method", "amount_fen", "refunded_fen", "status",
                    "transaction_id"]
    export_columns = ["paid_dt", "receipt_no", "merchant", "zone", "method", "status", "amount_fen", "refunded_fen",
                      "transaction_id", "out_trade_no", "note"]
    search_columns = ["paid_dt", "merchant", "zone", "method", "status", "transaction_id", "receipt_no"]
    order_columns = ["paid_dt", "amount_fen", "receipt_no"]
    base_order = ("id", "desc")
    base_permissions = ["can_list", "can_show", "can_export"]
    formatters_columns = {"paid_dt": format_local}
    search_form_query_rel_fields = {
        "merchant": [["id", ZoneScopeFilter, lambda: None]],
        "zone": [["id", ZoneScopeFilter, lambda: None]],
    }

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """A payment with the bills it paid (and their receipts) and its refunds."""
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            abort(404)
        allocations = db.session.execute(
            sa.select(PaymentAllocation, Bill).join(Bill, Bill.id == PaymentAllocation.bill_id)
            .where(PaymentAllocation.payment_id == payment.id).order_by(Bill.due_date, Bill.id)
        ).all()
        return self.render_template(
            "payments/show.html",
            title=payment.receipt_no or self.show_title,
            payment=payment,
            allocations=allocations,
            refundable=payment_service.refundable_fen(payment),
            can_download=self.appbuilder.sm.has_access("can_download", "ReceiptView"),
            can_refund_offline=(payment.method in payment_service.OFFLINE_METHODS and
                                self.appbuilder.sm.has_access("can_refund", "OfflineRefundView")),
            can_see_bills=self.appbuilder.sm.has_access("can_show", "BillView"),
            format_yuan=format_yuan,
            format_local=format_local,
            period_str=period_str,
            BillStatus=BillStatus,
        )


class RefundView(ScopedModelView):
    """Refunds (退款) of payments, read only (WeChat refunds are made from the WeChat Pay pages)."""

    datamodel = SQLAInterface(Refund)
    list_title = _("Refunds")
    show_title = _("Refund")
    label_columns = LABELS
    list_columns = ["created_dt", "payment", "out_refund_no", "amount_fen", "status", "reason", "succeeded_dt"]
    show_columns = ["created_dt", "payment", "out_refund_no", "refund_id", "amount_fen", "status", "reason",
                    "succeeded_dt", "created_by"]
    search_columns = ["created_dt", "status", "out_refund_no"]
    base_order = ("id", "desc")
    base_permissions = ["can_list", "can_show", "can_export"]
    formatters_columns = {"created_dt": format_local, "succeeded_dt": format_local}


class OfflinePaymentForm(FlaskForm):
    amount = StringField(_("Amount (yuan)"), validators=[validators.InputRequired()])
    method = SelectField(_("Method"), choices=[("cash", "现金"), ("bank_transfer", "银行转账")], default="cash")
    reference = StringField(_("Reference"), validators=[validators.Length(max=64)])
    paid_at = StringField(_("Received at"))
    note = TextAreaField(_("Note"), validators=[validators.Length(max=300)])


def _parse_local_datetime(text: str) -> datetime:
    """'YYYY-MM-DDTHH:MM' (a datetime-local input, Shanghai time) -> aware UTC datetime."""
    text = (text or "").strip().replace(" ", "T")
    local = datetime.fromisoformat(text)
    if local.tzinfo is None:
        local = local.replace(tzinfo=MARKET_TZ)
    return local


class OfflinePaymentView(BaseView):
    """Finance records a cash or bank-transfer payment against a merchant's open bills."""

    route_base = "/payments/offline"
    default_view = "record"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def record(self):
        """Choose a merchant, tick their open bills, enter the amount and reference; one payment, with receipts."""
        merchants = db.session.execute(
            scope_query(
                sa.select(Merchant, sa.func.count(Bill.id), sa.func.sum(Bill.amount_fen + Bill.late_fee_fen - Bill.paid_fen))
                .join(Bill, Bill.merchant_id == Merchant.id)
                .where(Bill.status.in_(OPEN_BILL_STATUSES))
                .group_by(Merchant.id)
                .order_by(Merchant.code),
                Merchant,
            )
        ).all()
        merchant = None
        merchant_id = request.values.get("merchant_id", type=int)
        # ?bill_id= (the bill page's button) preselects that bill only, and its merchant.
        bill_id = request.args.get("bill_id", type=int)
        if bill_id and not merchant_id:
            preselected = db.session.get(Bill, bill_id)
            if preselected is None or not can_see_zone(preselected.zone_id):
                abort(404)
            merchant_id = preselected.merchant_id
        if merchant_id:
            merchant = db.session.get(Merchant, merchant_id)
            if merchant is None or not can_see_zone(merchant.zone_id):
                abort(404)
        form = OfflinePaymentForm()
        bills = payment_service.open_bills(merchant.id) if merchant else []
        bills = [b for b in bills if can_see_zone(b.zone_id)]
        if bill_id and any(b.id == bill_id for b in bills):
            ticked = {bill_id}
        else:
            ticked = {b.id for b in bills}
        if request.method == "GET" and merchant:
            total = sum(b.outstanding_fen for b in bills if b.id in ticked)
            form.amount.data = fen_to_yuan_str(total) if total > 0 else ""
            form.reference.data = payment_service.next_cash_reference(merchant.market_id)
            form.paid_at.data = format_local(now_utc(), "%Y-%m-%dT%H:%M")
        if request.method == "POST" and merchant and form.validate():
            payment = self._record(merchant, form)
            if payment is not None:
                return redirect(url_for("PaymentView.show", pk=payment.id))
        selected = set(request.form.getlist("bill_ids", type=int)) if request.method == "POST" else ticked
        return self.render_template(
            "payments/offline.html",
            title=_("Record payment"),
            merchants=merchants,
            merchant=merchant,
            bills=bills,
            selected=selected,
            form=form,
            format_yuan=format_yuan,
            period_str=period_str,
        )

    def _record(self, merchant, form):
        try:
            amount = parse_yuan(form.amount.data)
            paid_dt = _parse_local_datetime(form.paid_at.data) if (form.paid_at.data or "").strip() else now_utc()
        except ValueError as exc:
            flash(str(exc) if "金额" in str(exc) else f"收款时间格式不正确：{form.paid_at.data}", "danger")
            return None
        method = form.method.data
        reference = (form.reference.data or "").strip()
        if not reference:
            if method == PaymentMethod.cash.value:
                reference = payment_service.next_cash_reference(merchant.market_id, paid_dt)
            else:
                flash("银行转账请填写银行流水号", "danger")
                return None
        bill_ids = request.form.getlist("bill_ids", type=int)
        existing = payment_service.payment_by_transaction(reference)
        try:
            payment = payment_service.record_payment(
                merchant.market_id, merchant.id, bill_ids, amount, method, reference, paid_dt,
                note=form.note.data, recorded_by=current_user,
            )
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return None
        db.session.commit()
        if existing is not None:
            flash(f"参考号 {reference} 的收款已登记过，未重复记账", "info")
        else:
            flash(f"已登记收款 {format_yuan(payment.amount_fen)}，收款凭证号 {payment.receipt_no}", "success")
        return payment


class OfflineRefundForm(FlaskForm):
    amount = StringField(_("Refund amount (yuan)"), validators=[validators.InputRequired()])
    reason = StringField(_("Reason"), validators=[validators.InputRequired(), validators.Length(max=200)])
    reference = StringField(_("Refund reference"), validators=[validators.Length(max=64)])
    out_refund_no = HiddenField()


class OfflineRefundView(BaseView):
    """Finance hands money back for a cash or bank-transfer payment (WeChat payments refund through WeChat Pay)."""

    route_base = "/payments/offline-refund"
    default_view = "refund"

    @expose("/<int:payment_id>", methods=["GET", "POST"])
    @has_access
    def refund(self, payment_id):
        """Amount (yuan), reason and the refund's reference; one refund per form, the bills owe the amount again."""
        payment = db.session.get(Payment, payment_id)
        if payment is None or not can_see_zone(payment.zone_id):
            abort(404)
        if payment.method not in payment_service.OFFLINE_METHODS:
            flash(gettext("WeChat Pay payments are refunded from WeChat Pay › Refunds."), "warning")
            return redirect(url_for("PaymentView.show", pk=payment.id))
        refundable = payment_service.refundable_fen(payment)
        form = OfflineRefundForm()
        if request.method == "GET":
            form.amount.data = fen_to_yuan_str(refundable) if refundable > 0 else ""
            form.out_refund_no.data = f"RF{payment.id:06d}-{secrets.token_hex(6)}"
        elif form.validate():
            try:
                amount = parse_yuan(form.amount.data)
                payment_service.refund_offline_payment(
                    payment.id, amount, form.reason.data, form.out_refund_no.data,
                    reference=form.reference.data, created_by=current_user,
                )
            except ValueError as exc:
                flash(str(exc), "danger")
            except DomainError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
            else:
                db.session.commit()
                flash(gettext("Refund of %(amount)s booked; the bills owe it again.", amount=format_yuan(amount)),
                      "success")
                return redirect(url_for("PaymentView.show", pk=payment.id))
        return self.render_template(
            "payments/offline_refund.html",
            title=_("Offline refund"),
            payment=payment,
            refundable=refundable,
            form=form,
            format_yuan=format_yuan,
            format_local=format_local,
        )


class ReceiptView(BaseView):
    """The e-receipt (PDF) of a paid bill, for staff who may see the bill's zone."""

    route_base = "/receipts"
    default_view = "download"

    @expose("/bill/<int:bill_id>")
    @has_access
    def download(self, bill_id):
        """Download a paid bill's PDF receipt."""
        bill = db.session.get(Bill, bill_id)
        if bill is None or not can_see_zone(bill.zone_id):
            abort(404)
        try:
            pdf = receipts.render_bill_receipt(bill.id)
        except receipts.ReceiptUnavailable as exc:
            flash(exc.message, "warning")
            return redirect(request.referrer or url_for("PaymentView.list"))
        except PdfError as exc:
            flash(f"收据生成失败：{exc}", "danger")
            return redirect(request.referrer or url_for("PaymentView.list"))
        inline = request.args.get("inline") == "1"
        disposition = "inline" if inline else "attachment"
        return Response(pdf, mimetype="application/pdf", headers={
            "Content-Disposition": f'{disposition}; filename="{receipts.receipt_filename(bill)}"',
            "Cache-Control": "private, no-store",
        })


#: Public (no login) receipt verification: the URL in a receipt's QR code.
receipt_verification = Blueprint("receipt_verification", __name__)


@receipt_verification.route("/r/<receipt_no>/<signature>")
def verify_receipt_page(receipt_no, signature):
    """Say whether a receipt is genuine (真实有效) or cannot be verified (无法验证)."""
    check = receipts.verify_receipt(receipt_no, signature)
    facts = dict(check.facts)
    if facts.get("paid_dt"):
        facts["paid_dt"] = format_local(facts["paid_dt"])
    response = Response(render_template("receipts/verify.html", check=check, facts=facts),
                        status=200 if check.is_genuine else 404, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response
