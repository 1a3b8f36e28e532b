"""E-receipts (电子收据) for paid bills, and their public verification.

A receipt carries a QR code of PUBLIC_BASE_URL + "/r/<receipt_no>/<signature>". The signature is
an HMAC-SHA256 (itsdangerous Signer, salted) of the receipt number under SECRET_KEY, so receipt
numbers cannot be guessed into valid links. The verification page says 真实有效 only when the
signature is right AND a bill that is still paid carries that receipt number today (a receipt
voided by a refund stops verifying).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app
from itsdangerous import Signer

from app.extensions import db
from app.models import Bill, BillLine, Unit, lease_units
from app.models.enums import BillStatus, PaymentStatus
from app.models.latefees import LateFeeWaiver
from app.models.payments import Payment, PaymentAllocation
from app.services.exceptions import DomainError, NotFound
from app.utils.money import format_yuan
from app.utils.pdf import render_pdf

RECEIPT_TEMPLATE = "documents/receipt.html"
_SALT = "market-steward.receipt-verification"
#: Documents are Chinese whatever the reader's UI language.
METHOD_NAMES = {"wechat": "微信支付", "cash": "现金", "bank_transfer": "银行转账"}


class ReceiptUnavailable(DomainError):
    """The bill has no receipt (it is not fully paid)."""

    code = "receipt_unavailable"
    http_status = 409


def _signer() -> Signer:
    return Signer(current_app.config["SECRET_KEY"], salt=_SALT, digest_method=hashlib.sha256)


def receipt_signature(receipt_no: str) -> str:
    """The signature that makes a receipt's verification link (HMAC of SECRET_KEY, base64url)."""
    return _signer().get_signature(receipt_no).decode("ascii")


def verification_url(receipt_no: str) -> str:
    """The public URL printed (and QR-coded) on a receipt: PUBLIC_BASE_URL/r/<receipt_no>/<signature>."""
    base = current_app.config.get("PUBLIC_BASE_URL", "").rstrip("/")
    return f"{base}/r/{quote(receipt_no, safe='')}/{receipt_signature(receipt_no)}"


@dataclass
class ReceiptCheck:
    is_genuine: bool
    receipt_no: str
    facts: dict = field(default_factory=dict)


def verify_receipt(receipt_no: str, signature: str) -> ReceiptCheck:
    """Whether a receipt link is genuine: right signature and a bill still paid under that number."""
    receipt_no = (receipt_no or "")[:40]
    try:
        signed = _signer().verify_signature(receipt_no.encode("utf-8"), (signature or "").encode("ascii"))
    except (UnicodeEncodeError, ValueError):
        signed = False
    if not signed:
        return ReceiptCheck(False, receipt_no)
    bill = db.session.scalar(sa.select(Bill).where(Bill.receipt_no == receipt_no))
    if bill is None or bill.status != BillStatus.paid:
        return ReceiptCheck(False, receipt_no)
    total = bill.amount_fen + bill.late_fee_fen
    return ReceiptCheck(True, receipt_no, {
        "receipt_no": receipt_no,
        "market_name": bill.market.name,
        "merchant_name": bill.merchant.name,
        "unit_codes": "、".join(bill_unit_codes(bill)) or "—",
        "period": period_text(bill),
        "bill_number": bill.number,
        "total_fen": total,
        "total_yuan": format_yuan(total),
        "paid_dt": bill.paid_dt,
        "payment_method": _method_names(_bill_payments(bill)),
    })


def bill_unit_codes(bill: Bill) -> list[str]:
    """The unit codes a bill is for: its lines' units, else its lease's units."""
    return bills_unit_codes([bill])[bill.id]


def bills_unit_codes(bills) -> dict[int, list[str]]:
    """The unit codes of several bills at once (two queries): {bill id: sorted codes}."""
    result: dict[int, set[str]] = {bill.id: set() for bill in bills}
    if not result:
        return {}
    for bill_id, code in db.session.execute(
        sa.select(BillLine.bill_id, Unit.code).join(Unit, Unit.id == BillLine.unit_id)
        .where(BillLine.bill_id.in_(list(result))).distinct()
    ):
        result[bill_id].add(code)
    by_lease: dict[int, list[int]] = {}
    for bill in bills:
        if not result[bill.id] and bill.lease_id is not None:
            by_lease.setdefault(bill.lease_id, []).append(bill.id)
    if by_lease:
        for lease_id, code in db.session.execute(
            sa.select(lease_units.c.lease_id, Unit.code).join(Unit, Unit.id == lease_units.c.unit_id)
            .where(lease_units.c.lease_id.in_(list(by_lease)))
        ):
            for bill_id in by_lease[lease_id]:
                result[bill_id].add(code)
    return {bill_id: sorted(codes) for bill_id, codes in result.items()}


def period_text(bill: Bill) -> str:
    """The billed period as printed: 2026年11月."""
    return f"{bill.period.year}年{bill.period.month}月"


def _bill_payments(bill: Bill) -> list[Payment]:
    """The succeeded payments allocated to a bill, in time order."""
    return list(db.session.scalars(
        sa.select(Payment).join(PaymentAllocation, PaymentAllocation.payment_id == Payment.id)
        .where(PaymentAllocation.bill_id == bill.id, Payment.status == PaymentStatus.succeeded)
        .order_by(Payment.paid_dt, Payment.id)
    ))


def _method_names(payments) -> str:
    names = []
    for payment in payments:
        name = METHOD_NAMES.get(payment.method.value, payment.method.value)
        if name not in names:
            names.append(name)
    return "、".join(names) or "—"


def _quantity_text(line: BillLine) -> str:
    qty = line.quantity
    if qty is None:
        return ""
    qty = Decimal(qty)
    text = f"{qty.normalize():f}" if qty != qty.to_integral() else f"{int(qty):,}"
    return f"{text} {line.unit_label}".strip() if line.unit_label else text


def _price_text(line: BillLine) -> str:
    if line.rate_fen is None:
        return ""
    yuan = Decimal(line.rate_fen) / 100
    if yuan == yuan.quantize(Decimal("0.01")):
        text = f"¥{yuan:,.2f}"
    else:
        text = f"¥{yuan.normalize():f}"
    return f"{text}/{line.unit_label}" if line.unit_label else text


def receipt_context(bill: Bill) -> dict:
    """The documents/receipt.html context for a paid bill."""
    payments = _bill_payments(bill)
    waived = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LateFeeWaiver.amount_fen), 0)).where(LateFeeWaiver.bill_id == bill.id)
    )
    remarks = [f"账单号 {bill.number}"]
    if waived:
        remarks.append(f"已减免滞纳金 {format_yuan(int(waived))}")
    cashiers = []
    for payment in payments:
        user = payment.recorded_by
        if user is not None:
            label = f"{user.first_name or ''}{user.last_name or ''}".strip() or user.username
            if label not in cashiers:
                cashiers.append(label)
    return {
        "market_name": bill.market.name,
        "receipt_no": bill.receipt_no,
        "merchant_name": bill.merchant.name,
        "unit_codes": bill_unit_codes(bill) or "—",
        "period": period_text(bill),
        "lines": [
            {"name": line.description, "quantity": _quantity_text(line), "unit_price": _price_text(line),
             "amount_fen": line.amount_fen}
            for line in bill.lines
        ],
        "late_fee_fen": bill.late_fee_fen,
        "total_fen": bill.amount_fen + bill.late_fee_fen,
        "paid_dt": bill.paid_dt,
        "payment_method": _method_names(payments),
        "transaction_id": "、".join(p.transaction_id for p in payments if p.transaction_id),
        "verify_url": verification_url(bill.receipt_no),
        "issuer": bill.market.name,
        "cashier": "、".join(cashiers),
        "remark": "；".join(remarks),
    }


def render_bill_receipt(bill_id: int) -> bytes:
    """The PDF e-receipt of a fully paid bill."""
    bill = db.session.get(Bill, bill_id)
    if bill is None:
        raise NotFound("账单不存在")
    if bill.status != BillStatus.paid or not bill.receipt_no:
        raise ReceiptUnavailable(f"账单 {bill.number} 尚未结清，不能开具收据")
    return render_pdf(RECEIPT_TEMPLATE, receipt_context(bill))


def receipt_filename(bill: Bill) -> str:
    """Download name of a bill's receipt."""
    return f"receipt-{bill.receipt_no}.pdf"


__all__ = [
    "ReceiptCheck",
    "ReceiptUnavailable",
    "bill_unit_codes",
    "period_text",
    "receipt_context",
    "receipt_filename",
    "receipt_signature",
    "render_bill_receipt",
    "verification_url",
    "verify_receipt",
]
