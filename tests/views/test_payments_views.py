"""Back office payments: Finance records cash / bank transfers; lists and receipts obey zone scope;
the public verification page needs no login."""
import re
from datetime import datetime, timezone
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill
from app.models.enums import BillStatus, PaymentMethod
from app.models.payments import Payment
from app.services.payments import record_payment
from app.services.receipts import verification_url
from tests.factories import make_bill

PAID = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)


@pytest.fixture
def open_bills(market):
    """Zone A merchant 张记蔬菜: two open bills (¥300 due 10-15, ¥700 due 11-15); zone B 王记水产: ¥500."""
    a = [make_bill(market.leases[0], amount_fen=30000, due_date=datetime(2026, 10, 15).date(),
                   period=datetime(2026, 9, 1).date()),
         make_bill(market.leases[0], amount_fen=70000)]
    b = make_bill(market.leases[2], amount_fen=50000)
    db.session.commit()
    return {"a": a, "b": b}


def form(bill_ids, **values):
    data = {"amount": "1,000.00", "method": "cash", "reference": "", "paid_at": "2026-11-20T10:30", "note": ""}
    data.update(values)
    data["bill_ids"] = [str(i) for i in bill_ids]
    return data


def test_finance_records_cash_against_open_bills(login_as, market, open_bills):
    client = login_as("finance")
    merchant = market.merchants_a[0]
    page = client.get(f"/payments/offline/?merchant_id={merchant.id}").get_data(as_text=True)
    assert open_bills["a"][0].number in page and open_bills["a"][1].number in page
    assert 'value="1000.00"' in page  # the amount defaults to what the bills owe
    assert re.search(r'value="CASH-\d{8}-0001"', page)
    ids = [b.id for b in open_bills["a"]]
    resp = client.post(f"/payments/offline/?merchant_id={merchant.id}", data=form(ids, amount="400.00"))
    assert resp.status_code == 302
    db.session.expire_all()
    payment = db.session.scalars(sa.select(Payment)).one()
    assert payment.amount_fen == 40000 and payment.method == PaymentMethod.cash
    assert payment.transaction_id == "CASH-20261120-0001" and payment.recorded_by.username == "finance"
    assert payment.paid_dt == PAID
    first, second = (db.session.get(Bill, b.id) for b in open_bills["a"])
    assert (first.status, first.paid_fen) == (BillStatus.paid, 30000)
    assert (second.status, second.paid_fen) == (BillStatus.partially_paid, 10000)
    detail = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert payment.receipt_no in detail and first.receipt_no in detail
    assert f"/receipts/bill/{first.id}" in detail and f"/receipts/bill/{second.id}" not in detail


def test_resubmitting_the_same_reference_records_once(login_as, market, open_bills):
    client = login_as("finance")
    merchant = market.merchants_a[0]
    ids = [b.id for b in open_bills["a"]]
    data = form(ids, amount="300.00", method="bank_transfer", reference="ICBC20261120001")
    assert client.post(f"/payments/offline/?merchant_id={merchant.id}", data=data).status_code == 302
    again = client.post(f"/payments/offline/?merchant_id={merchant.id}", data=data, follow_redirects=True)
    assert "已登记过" in again.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    assert db.session.get(Bill, open_bills["a"][0].id).paid_fen == 30000


def test_over_payment_and_bad_input_are_refused(login_as, market, open_bills):
    client = login_as("finance")
    merchant = market.merchants_a[0]
    ids = [b.id for b in open_bills["a"]]
    page = client.post(f"/payments/offline/?merchant_id={merchant.id}", data=form(ids, amount="1,000.01"))
    assert page.status_code == 200 and "超过所选账单未付合计" in page.get_data(as_text=True)
    page = client.post(f"/payments/offline/?merchant_id={merchant.id}", data=form(ids, amount="12.345"))
    assert "金额最多保留两位小数" in page.get_data(as_text=True)
    page = client.post(f"/payments/offline/?merchant_id={merchant.id}",
                       data=form(ids, amount="10", method="bank_transfer", reference=""))
    assert "银行流水号" in page.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0


def test_only_finance_records_payments(login_as, market, open_bills):
    for username in ("manager1", "leader", "clerk"):
        assert login_as(username).get("/payments/offline/").status_code in (302, 403)


def _pay(market, bill, ref):
    record_payment(market.market.id, bill.merchant_id, [bill.id], bill.amount_fen, "cash", ref, PAID)
    db.session.commit()
    return db.session.scalar(sa.select(Payment).where(Payment.transaction_id == ref))


def test_payments_list_detail_and_receipts_are_zone_scoped(login_as, market, open_bills):
    pay_a = _pay(market, open_bills["a"][0], "CASH-A")
    pay_b = _pay(market, open_bills["b"], "CASH-B")
    manager1 = login_as("manager1")
    listing = manager1.get("/paymentview/list/").get_data(as_text=True)
    assert pay_a.receipt_no in listing and pay_b.receipt_no not in listing
    assert manager1.get(f"/paymentview/show/{pay_a.id}").status_code == 200
    assert manager1.get(f"/paymentview/show/{pay_b.id}").status_code == 404
    assert manager1.get(f"/receipts/bill/{open_bills['b'].id}").status_code == 404
    resp = manager1.get(f"/receipts/bill/{open_bills['a'][0].id}")
    if resp.status_code == 200:  # wkhtmltopdf installed
        assert resp.data.startswith(b"%PDF") and resp.mimetype == "application/pdf"
    leader = login_as("leader").get("/paymentview/list/").get_data(as_text=True)
    assert pay_a.receipt_no in leader and pay_b.receipt_no in leader
    assert login_as("repairer1").get("/paymentview/list/").status_code in (302, 403)


def test_unpaid_bill_receipt_redirects_with_a_message(login_as, market, open_bills):
    client = login_as("finance")
    resp = client.get(f"/receipts/bill/{open_bills['a'][1].id}", follow_redirects=True)
    assert "尚未结清" in resp.get_data(as_text=True)


def test_public_verification_page(client, market, open_bills):
    bill = open_bills["a"][0]
    _pay(market, bill, "CASH-V")
    bill = db.session.get(Bill, bill.id)
    path = urlparse(verification_url(bill.receipt_no)).path
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "真实有效" in text and "张记蔬菜" in text and "¥300.00" in text
    tampered = path[:-2] + ("xx" if not path.endswith("xx") else "yy")
    page = client.get(tampered)
    assert page.status_code == 404 and "无法验证" in page.get_data(as_text=True) and "张记蔬菜" not in page.get_data(as_text=True)
    assert "无法验证" in client.get("/r/JJ-R20261120-000999/abc").get_data(as_text=True)


def _refund_form(client, payment, **values):
    page = client.get(f"/payments/offline-refund/{payment.id}").get_data(as_text=True)
    token = re.search(r'name="out_refund_no" type="hidden" value="([^"]+)"', page).group(1)
    data = {"amount": "", "reason": "多收退还", "reference": "", "out_refund_no": token}
    data.update(values)
    return page, data


def test_finance_refunds_a_cash_payment_once_and_the_bill_is_owed_again(login_as, market, open_bills):
    bill = open_bills["a"][0]
    payment = _pay(market, bill, "CASH-R1")
    client = login_as("finance")
    detail = client.get(f"/paymentview/show/{payment.id}").get_data(as_text=True)
    assert f"/payments/offline-refund/{payment.id}" in detail
    page, data = _refund_form(client, payment, amount="120.50")
    assert 'value="300.00"' in page  # the amount defaults to what is refundable

    first = client.post(f"/payments/offline-refund/{payment.id}", data=data)
    again = client.post(f"/payments/offline-refund/{payment.id}", data=data)  # the same form twice

    assert first.status_code == 302 and again.status_code == 302
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert [(r.amount_fen, r.status.value, r.reason) for r in payment.refunds] == [(12050, "succeeded", "多收退还")]
    assert payment.refunded_fen == 12050
    bill = db.session.get(Bill, bill.id)
    assert (bill.status, bill.paid_fen) == (BillStatus.partially_paid, 30000 - 12050)
    assert bill.receipt_no is None


def test_offline_refund_never_exceeds_what_was_paid(login_as, market, open_bills):
    payment = _pay(market, open_bills["a"][0], "CASH-R2")
    client = login_as("finance")
    _, data = _refund_form(client, payment, amount="200")
    assert client.post(f"/payments/offline-refund/{payment.id}", data=data).status_code == 302
    _, data = _refund_form(client, payment, amount="100.01")
    page = client.post(f"/payments/offline-refund/{payment.id}", data=data).get_data(as_text=True)
    assert "超过可退金额" in page and "¥100.00" in page
    _, data = _refund_form(client, payment, amount="abc")
    assert "金额格式不正确" in client.post(f"/payments/offline-refund/{payment.id}", data=data).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).refunded_fen == 20000


def test_bank_transfer_refund_needs_the_serial_and_wechat_payments_are_sent_elsewhere(login_as, market, open_bills):
    bill = open_bills["a"][0]
    record_payment(market.market.id, bill.merchant_id, [bill.id], 30000, "bank_transfer", "ICBC-R3", PAID)
    db.session.commit()
    payment = db.session.scalar(sa.select(Payment).where(Payment.transaction_id == "ICBC-R3"))
    client = login_as("finance")
    _, data = _refund_form(client, payment, amount="50")
    assert "银行流水号" in client.post(f"/payments/offline-refund/{payment.id}", data=data).get_data(as_text=True)
    data["reference"] = "ICBC-BACK-1"
    assert client.post(f"/payments/offline-refund/{payment.id}", data=data).status_code == 302
    db.session.expire_all()
    assert [r.refund_id for r in db.session.get(Payment, payment.id).refunds] == ["ICBC-BACK-1"]

    wechat = _pay(market, open_bills["a"][1], "CASH-R3W")
    db.session.execute(sa.update(Payment).where(Payment.id == wechat.id).values(method=PaymentMethod.wechat))
    db.session.commit()
    resp = client.get(f"/payments/offline-refund/{wechat.id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/paymentview/show/{wechat.id}")


def test_only_finance_refunds_and_managers_stay_in_their_zones(login_as, market, open_bills):
    pay_a = _pay(market, open_bills["a"][0], "CASH-R4")
    for username in ("manager1", "leader", "clerk"):
        client = login_as(username)
        assert client.get(f"/payments/offline-refund/{pay_a.id}").status_code in (302, 403)
        if username == "manager1":
            detail = client.get(f"/paymentview/show/{pay_a.id}").get_data(as_text=True)
            assert "/payments/offline-refund/" not in detail
    assert login_as("finance").get("/payments/offline-refund/999999").status_code == 404
