"""E-receipts: the PDF of a paid bill and the public verification of its QR link."""
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill
from app.models.enums import RefundStatus
from app.models.payments import Payment
from app.services.exceptions import DomainError
from app.services.payments import record_payment, record_refund
from app.services.receipts import (
    ReceiptUnavailable,
    receipt_context,
    receipt_signature,
    render_bill_receipt,
    verification_url,
    verify_receipt,
)
from app.utils.money import amount_in_chinese
from tests.factories import make_bill

needs_pdf_tools = pytest.mark.skipif(
    shutil.which("wkhtmltopdf") is None or shutil.which("pdftotext") is None,
    reason="wkhtmltopdf and poppler-utils are needed to render and read receipts",
)
PAID = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)


@pytest.fixture
def paid_bill(market, staff):
    lease = market.leases[0]
    bill = make_bill(lease, lines=[
        dict(description="摊位租金", quantity=12, unit_label="m²", rate_fen=6000, amount_fen=72000),
        dict(description="管理费", quantity=1, rate_fen=5000, amount_fen=5000),
        dict(description="电费", quantity=215, unit_label="kWh", rate_fen=68, amount_fen=15070),
    ])
    db.session.commit()
    record_payment(market.market.id, bill.merchant_id, [bill.id], 92070, "cash", "CASH-20261120-0001", PAID,
                   recorded_by=staff["finance"])
    db.session.commit()
    return db.session.get(Bill, bill.id)


def test_context_has_what_the_receipt_prints(paid_bill):
    ctx = receipt_context(paid_bill)
    assert ctx["merchant_name"] == "张记蔬菜" and ctx["unit_codes"] == ["A-001"]
    assert ctx["total_fen"] == 92070 and ctx["payment_method"] == "现金"
    assert ctx["lines"][0] == {"name": "摊位租金", "quantity": "12 m²", "unit_price": "¥60.00/m²", "amount_fen": 72000}
    assert ctx["lines"][2]["unit_price"] == "¥0.68/kWh"
    assert ctx["cashier"] == "finance" and ctx["transaction_id"] == "CASH-20261120-0001"
    assert ctx["verify_url"] == f"http://127.0.0.1:5000/r/{paid_bill.receipt_no}/{receipt_signature(paid_bill.receipt_no)}"


@needs_pdf_tools
def test_pdf_receipt_text(paid_bill, tmp_path):
    pdf = render_bill_receipt(paid_bill.id)
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "张记蔬菜" in text
    assert paid_bill.receipt_no in text
    assert amount_in_chinese(92070) == "玖佰贰拾元零柒角"
    assert "玖佰贰拾元零柒角" in text
    assert "¥920.70" in text and "现金" in text and "A-001" in text
    if shutil.which("pdftoppm"):  # a picture to look at while developing
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                       check=True)
        assert list(Path(tmp_path).glob("page*.png"))


def test_unpaid_bill_has_no_receipt(market):
    bill = make_bill(market.leases[0], amount_fen=1000)
    db.session.commit()
    with pytest.raises(ReceiptUnavailable) as err:
        render_bill_receipt(bill.id)
    assert isinstance(err.value, DomainError)


def test_verification(paid_bill):
    url = urlparse(verification_url(paid_bill.receipt_no))
    _, r, number, signature = url.path.split("/")
    assert r == "r" and number == paid_bill.receipt_no
    check = verify_receipt(number, signature)
    assert check.is_genuine and check.facts["merchant_name"] == "张记蔬菜" and check.facts["total_fen"] == 92070
    assert not verify_receipt(number, signature[:-1] + ("A" if signature[-1] != "A" else "B")).is_genuine
    assert not verify_receipt(number, "").is_genuine
    other = number[:-1] + ("9" if number[-1] != "9" else "8")  # a guessed number
    assert not verify_receipt(other, signature).is_genuine
    assert not verify_receipt("JJ-R20261120-999999", receipt_signature("JJ-R20261120-999999")).is_genuine  # unknown


def test_refund_voids_the_receipt(paid_bill):
    number = paid_bill.receipt_no
    payment = db.session.scalar(sa.select(Payment))
    record_refund(payment.id, 100, "多收", status=RefundStatus.succeeded)
    db.session.commit()
    assert not verify_receipt(number, receipt_signature(number)).is_genuine
    with pytest.raises(ReceiptUnavailable):
        render_bill_receipt(paid_bill.id)
