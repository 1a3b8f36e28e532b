"""GET /bills, /bills/{id}, /bills/{id}/receipt: the current merchant's bills only."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Response, g

from app.api.mp import ApiError, api_doc, merchant_required, mp_api, paginate, query_args
from app.api.schemas.bills import BillDetailSchema, BillListQuerySchema, BillPageSchema, BillSummarySchema
from app.api.schemas.common import MAX_ID
from app.extensions import db
from app.models import Bill, Unit
from app.models.enums import OPEN_BILL_STATUSES, BillStatus, PaymentStatus
from app.models.payments import Payment, PaymentAllocation
from app.services.billing import overdue_clause
from app.utils.dates import today_local

#: Bills a merchant sees (drafts are not posted yet, void bills are hidden).
VISIBLE_STATUSES = (BillStatus.issued, BillStatus.partially_paid, BillStatus.paid)


def merchant_bills(merchant_id: int, status: str | None = None) -> sa.Select:
    """The merchant's visible bills, newest due date first, filtered by unpaid / overdue / paid."""
    stmt = sa.select(Bill).where(Bill.merchant_id == merchant_id)
    if status in ("unpaid", "overdue"):
        stmt = stmt.where(Bill.status.in_(OPEN_BILL_STATUSES))
        if status == "overdue":
            stmt = stmt.where(overdue_clause(today_local()))
    elif status == "paid":
        stmt = stmt.where(Bill.status == BillStatus.paid)
    else:
        stmt = stmt.where(Bill.status.in_(VISIBLE_STATUSES))
    return stmt.order_by(Bill.due_date.desc(), Bill.id.desc())


def own_bill(bill_id: int) -> Bill:
    """One of the current merchant's visible bills, or 404 (also for other merchants' bills)."""
    if not 0 < bill_id <= MAX_ID:
        raise ApiError(404, "bill_not_found", "账单不存在")
    bill = db.session.execute(
        sa.select(Bill).where(Bill.id == bill_id, Bill.merchant_id == g.merchant.id,
                              Bill.status.in_(VISIBLE_STATUSES))
    ).scalar_one_or_none()
    if bill is None:
        raise ApiError(404, "bill_not_found", "账单不存在")
    return bill


@mp_api.get("/bills")
@api_doc("The merchant's bills", tags=["bills"], query=BillListQuerySchema, response=BillPageSchema)
@merchant_required
def list_bills():
    args = query_args(BillListQuerySchema())
    return paginate(merchant_bills(g.merchant.id, args.get("status")), BillSummarySchema(),
                    args["page"], args["page_size"], prepare=_attach_unit_codes)


def _attach_unit_codes(bills) -> None:
    """Give a page of bills their stall codes (for BillSummarySchema.unit_codes) in two queries."""
    from app.services.receipts import bills_unit_codes

    codes = bills_unit_codes(bills)
    for bill in bills:
        bill.unit_codes = codes[bill.id]


@mp_api.get("/bills/<int(signed=True):bill_id>")
@api_doc("One bill with its lines, late fee and payments", tags=["bills"], response=BillDetailSchema, errors=(404,))
@merchant_required
def get_bill(bill_id: int):
    from app.services.receipts import bill_unit_codes

    bill = own_bill(bill_id)
    rows = db.session.execute(
        sa.select(Payment, PaymentAllocation.amount_fen)
        .join(PaymentAllocation, PaymentAllocation.payment_id == Payment.id)
        .where(PaymentAllocation.bill_id == bill.id, Payment.status == PaymentStatus.succeeded)
        .order_by(Payment.paid_dt, Payment.id)
    ).all()
    bill.unit_codes = bill_unit_codes(bill)
    data = BillDetailSchema().dump(bill)
    unit_ids = {line.unit_id for line in bill.lines if line.unit_id is not None}
    codes = dict(db.session.execute(sa.select(Unit.id, Unit.code).where(Unit.id.in_(unit_ids))).all()) if unit_ids else {}
    for line in data["lines"]:
        line["unit_code"] = codes.get(line.get("unit_id"))
    data["payments"] = [
        {"id": p.id, "method": p.method.value, "amount_fen": amount, "paid_dt": p.paid_dt.isoformat() if p.paid_dt else None,
         "receipt_no": p.receipt_no}
        for p, amount in rows
    ]
    return data


@mp_api.get("/bills/<int(signed=True):bill_id>/receipt")
@api_doc("The PDF e-receipt of a fully paid bill", tags=["bills"], content_type="application/pdf",
         errors=(404, 409, 503), description="409 receipt_unavailable when the bill is not fully paid.")
@merchant_required
def get_bill_receipt(bill_id: int):
    from app.services.receipts import receipt_filename, render_bill_receipt
    from app.utils.pdf import PdfUnavailable

    bill = own_bill(bill_id)
    if bill.status != BillStatus.paid or not bill.receipt_no:
        raise ApiError(409, "receipt_unavailable", f"账单 {bill.number} 尚未结清，暂不能开具收据")
    try:
        pdf = render_bill_receipt(bill.id)
    except PdfUnavailable:
        raise ApiError(503, "pdf_unavailable", "收据暂时无法生成，请稍后再试") from None
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{receipt_filename(bill)}"',
        "Cache-Control": "private, no-store",
    })
