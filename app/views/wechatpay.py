"""Finance's WeChat Pay pages: online orders, notifications (suspicious in red), trade-bill mismatches, refunds."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _
from flask_login import current_user

from app.extensions import db
from app.models import Merchant, Payment, Refund
from app.models.enums import PaymentMethod, PaymentStatus, RefundStatus
from app.models.wechatpay import NotificationVerdict, PayNotification, PayOrder, PayOrderStatus, TradeBillMismatch
from app.services import wechat_payments
from app.services.exceptions import DomainError
from app.services.payments import refundable_amounts, refundable_fen
from app.utils.dates import format_local, today_local
from app.utils.money import format_yuan, parse_yuan

PAGE_ROWS = 200


def _paged(stmt) -> tuple[list, dict]:
    """One page (?page=N, PAGE_ROWS rows) of a Finance list, and the pager for the template."""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows = db.session.scalars(stmt.limit(PAGE_ROWS + 1).offset((page - 1) * PAGE_ROWS)).all()
    return rows[:PAGE_ROWS], {"page": page, "has_next": len(rows) > PAGE_ROWS}


def _helpers():
    from flask_wtf.csrf import generate_csrf

    return {"format_yuan": format_yuan, "format_local": format_local, "csrf_token": generate_csrf}


def _check_csrf() -> None:
    """Refuse a POST without a valid CSRF token (when CSRF is enabled)."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    from flask_wtf.csrf import validate_csrf

    try:
        validate_csrf(request.form.get("csrf_token"))
    except Exception:
        abort(400)


def _user_id():
    return getattr(current_user, "id", None)


class PayOrderListView(BaseView):
    """Online (WeChat Pay) orders, newest first."""

    route_base = "/wechatpay/orders"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        status = request.args.get("status") or ""
        stmt = sa.select(PayOrder).order_by(PayOrder.id.desc())
        if status in PayOrderStatus.__members__:
            stmt = stmt.where(PayOrder.status == PayOrderStatus(status))
        orders, pager = _paged(stmt)
        return self.render_template("wechatpay/orders.html", title=_("Online orders"), orders=orders,
                                    status=status, statuses=PayOrderStatus, pager=pager, **_helpers())


class PayNotificationListView(BaseView):
    """Every WeChat Pay notification and order query answer with its verdict; suspicious ones first."""

    route_base = "/wechatpay/notifications"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        only = request.args.get("verdict") or ""
        stmt = sa.select(PayNotification).order_by(PayNotification.id.desc())
        if only in NotificationVerdict.__members__:
            stmt = stmt.where(PayNotification.verdict == NotificationVerdict(only))
        records, pager = _paged(stmt)
        open_suspicious = db.session.scalar(sa.select(sa.func.count(PayNotification.id)).where(
            PayNotification.verdict == NotificationVerdict.suspicious, PayNotification.resolved_dt.is_(None)))
        return self.render_template("wechatpay/notifications.html", title=_("Pay notifications"), records=records,
                                    verdict=only, verdicts=NotificationVerdict, open_suspicious=open_suspicious,
                                    pager=pager, **_helpers())

    @expose("/<int:record_id>/resolve", methods=["POST"])
    @has_access
    def resolve(self, record_id):
        _check_csrf()
        try:
            wechat_payments.resolve_notification(record_id, _user_id())
            db.session.commit()
            flash(_("Marked as handled."), "success")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(url_for(".index", verdict=request.args.get("verdict") or None))


class TradeBillMismatchView(BaseView):
    """Differences between WeChat's daily trade bill and our payments."""

    route_base = "/wechatpay/reconciliation"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        show_all = request.args.get("all") == "1"
        stmt = sa.select(TradeBillMismatch).order_by(TradeBillMismatch.bill_date.desc(), TradeBillMismatch.id)
        if not show_all:
            stmt = stmt.where(TradeBillMismatch.is_resolved.is_(False))
        rows, pager = _paged(stmt)
        return self.render_template("wechatpay/mismatches.html", title=_("Reconciliation"), rows=rows,
                                    show_all=show_all, today=today_local(), pager=pager, **_helpers())

    @expose("/check", methods=["POST"])
    @has_access
    def check(self):
        _check_csrf()
        try:
            day = date.fromisoformat(request.form.get("bill_date", ""))
        except ValueError:
            flash("日期格式不正确（YYYY-MM-DD）", "danger")
            return redirect(url_for(".index"))
        try:
            counts = wechat_payments.check_trade_bill(day)
            db.session.commit()
            flash(f"{day} 交易账单：微信 {counts['wechat_payments']} 笔，本系统 {counts['local_payments']} 笔，"
                  f"差异 {counts['mismatches']} 条（新增 {counts['new_mismatches']}）", "info")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(url_for(".index"))

    @expose("/<int:mismatch_id>/resolve", methods=["POST"])
    @has_access
    def resolve(self, mismatch_id):
        _check_csrf()
        try:
            wechat_payments.resolve_mismatch(mismatch_id, _user_id(), request.form.get("note"))
            db.session.commit()
            flash(_("Marked as handled."), "success")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(url_for(".index"))


class WeChatRefundView(BaseView):
    """Refunds of WeChat payments: start a (partial) refund, resubmit it, query its state."""

    route_base = "/wechatpay/refunds"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        refunds, pager = _paged(
            sa.select(Refund).join(Payment, Payment.id == Refund.payment_id)
            .where(Payment.method == PaymentMethod.wechat).order_by(Refund.id.desc())
        )
        query = (request.args.get("q") or "").strip()
        stmt = (sa.select(Payment).where(Payment.method == PaymentMethod.wechat,
                                         Payment.status == PaymentStatus.succeeded)
                .order_by(Payment.id.desc()).limit(50))
        if query:
            like = f"%{query}%"
            stmt = stmt.join(Merchant, Merchant.id == Payment.merchant_id).where(sa.or_(
                Payment.out_trade_no.ilike(like), Payment.transaction_id.ilike(like), Merchant.name.ilike(like)))
        payments = db.session.scalars(stmt).all()
        return self.render_template("wechatpay/refunds.html", title=_("Refunds"), refunds=refunds,
                                    payments=payments, query=query, refundable=refundable_amounts(payments),
                                    processing=RefundStatus.processing, pager=pager, **_helpers())

    @expose("/new/<int:payment_id>", methods=["GET", "POST"])
    @has_access
    def new(self, payment_id):
        payment = db.session.get(Payment, payment_id)
        if payment is None or payment.method != PaymentMethod.wechat:
            flash("收款记录不存在或不是微信支付", "danger")
            return redirect(url_for(".index"))
        amount_text, reason = request.form.get("amount", ""), request.form.get("reason", "")
        if request.method == "POST":
            _check_csrf()
            try:
                amount_fen = parse_yuan(amount_text)
            except (TypeError, ValueError) as exc:
                flash(str(exc), "danger")
            else:
                try:
                    refund = wechat_payments.request_refund(payment.id, amount_fen, reason, _user_id())
                    db.session.commit()
                except DomainError as exc:
                    db.session.rollback()
                    flash(exc.message, "danger")
                else:
                    self._submit(refund.id)
                    return redirect(url_for(".index"))
        return self.render_template("wechatpay/refund_new.html", title=_("New refund"), payment=payment,
                                    refundable_fen=refundable_fen(payment), amount=amount_text, reason=reason,
                                    **_helpers())

    def _submit(self, refund_id):
        """Send the refund to WeChat (the edge commits); failures leave it processing for a retry."""
        try:
            refund = wechat_payments.submit_refund(refund_id)
            db.session.commit()
            flash(f"退款 {refund.out_refund_no} 已提交微信支付：{refund.status.label}", "success")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")

    @expose("/<int:refund_id>/submit", methods=["POST"])
    @has_access
    def submit(self, refund_id):
        _check_csrf()
        self._submit(refund_id)
        return redirect(url_for(".index"))

    @expose("/<int:refund_id>/query", methods=["POST"])
    @has_access
    def query(self, refund_id):
        _check_csrf()
        try:
            refund = wechat_payments.query_refund(refund_id)
            db.session.commit()
            flash(f"退款 {refund.out_refund_no}：{refund.status.label}", "info")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(url_for(".index"))
