"""The bill page offers the actions that apply to the bill and that the user may take: receipt PDF,
waive late fee, void, record an offline payment; each link leads to the existing page with the bill
preselected."""
import re
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill
from app.models.enums import BillKind, BillStatus
from app.models.payments import Payment
from app.services.latefees import accrue_late_fees, create_rule
from app.services.payments import record_payment
from tests.factories import make_bill

ACTIONS = ("btn-receipt", "btn-waive", "btn-void", "btn-record-payment")
PAID = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)


@pytest.fixture
def bills(market):
    """Zone A: `late` open with a late fee (¥1,000 due 11-15, 7 days accrued = ¥3.50), `fresh` open
    without one, `paid` paid in cash, `part` partly paid; all of 张记蔬菜's lease A-001."""
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_percent=Decimal(10))
    lease = market.leases[0]
    late = make_bill(lease, amount_fen=100000, due_date=date(2026, 11, 15))
    fresh, paid, part = (make_bill(lease, amount_fen=fen, kind=BillKind.adhoc, due_date=date(2026, 12, 15))
                         for fen in (20000, 30000, 40000))
    db.session.commit()
    accrue_late_fees(market.market.id, date(2026, 11, 22))
    record_payment(market.market.id, lease.merchant_id, [paid.id], 30000, "cash", "CASH-20261120-0001", PAID)
    record_payment(market.market.id, lease.merchant_id, [part.id], 10000, "cash", "CASH-20261120-0002", PAID)
    db.session.commit()
    return {"late": late, "fresh": fresh, "paid": paid, "part": part}


def actions(client, bill):
    resp = client.get(f"/billview/show/{bill.id}")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    return {a for a in ACTIONS if f'id="{a}"' in page}, page


def test_finance_sees_the_actions_that_apply_to_each_bill(login_as, bills):
    client = login_as("finance")
    assert actions(client, bills["late"])[0] == {"btn-waive", "btn-void", "btn-record-payment"}
    assert actions(client, bills["fresh"])[0] == {"btn-void", "btn-record-payment"}  # no late fee
    assert actions(client, bills["paid"])[0] == {"btn-receipt"}  # paid: no void, nothing to collect
    assert actions(client, bills["part"])[0] == {"btn-record-payment"}  # money received: no void
    found, page = actions(client, bills["late"])
    assert "减免滞纳金" in page and "登记线下收款" in page and "作废账单" in page
    assert "下载收据" in actions(client, bills["paid"])[1]


def test_admin_sees_what_finance_sees(login_as, bills):
    client = login_as("admin")
    assert actions(client, bills["late"])[0] == {"btn-waive", "btn-void", "btn-record-payment"}
    assert actions(client, bills["paid"])[0] == {"btn-receipt"}


@pytest.mark.parametrize("username", ["leader", "manager1"])
def test_readers_get_the_receipt_only(login_as, bills, username):
    client = login_as(username)
    assert actions(client, bills["late"])[0] == set()
    assert actions(client, bills["paid"])[0] == {"btn-receipt"}


def test_a_void_bill_offers_nothing(login_as, bills):
    client = login_as("finance")
    resp = client.post(f"/billview/void/{bills['fresh'].id}", data={"reason": "重复开单"})
    assert resp.status_code == 302
    assert actions(client, bills["fresh"])[0] == set()


def test_the_receipt_button_downloads_the_pdf(login_as, bills):
    client = login_as("manager1")
    page = actions(client, bills["paid"])[1]
    href = re.search(r'id="btn-receipt" href="([^"]+)"', page).group(1)
    resp = client.get(href)
    assert resp.status_code == 200
    assert resp.mimetype == "application/pdf"
    assert resp.data.startswith(b"%PDF")
    db.session.expire_all()
    receipt_no = db.session.get(Bill, bills["paid"].id).receipt_no
    assert receipt_no in resp.headers["Content-Disposition"]


def test_the_payment_button_preselects_the_bill(login_as, bills):
    client = login_as("finance")
    page = actions(client, bills["fresh"])[1]
    href = re.search(r'id="btn-record-payment" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    form = client.get(href).get_data(as_text=True)
    ticked = set(re.findall(r'name="bill_ids" value="(\d+)"[^>]* checked', form))
    assert ticked == {str(bills["fresh"].id)}  # the merchant's other open bills are listed, not ticked
    assert str(bills["late"].id) in re.findall(r'name="bill_ids" value="(\d+)"', form)
    assert 'value="200.00"' in form  # what this bill owes
    resp = client.post(href, data={"amount": "200.00", "method": "cash", "reference": "", "note": "",
                                   "paid_at": "2026-11-21T09:00", "bill_ids": [str(bills["fresh"].id)]})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Bill, bills["fresh"].id).status == BillStatus.paid
    assert db.session.get(Bill, bills["late"].id).paid_fen == 0
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 3


def test_the_bill_id_alone_picks_the_merchant_and_obeys_zone_scope(login_as, market, bills):
    client = login_as("finance")
    form = client.get(f"/payments/offline/?bill_id={bills['late'].id}").get_data(as_text=True)
    assert market.merchants_a[0].name in form
    assert set(re.findall(r'name="bill_ids" value="(\d+)"[^>]* checked', form)) == {str(bills["late"].id)}
    assert 'value="1003.50"' in form  # ¥1,000 + ¥3.50 late fee
    other = make_bill(market.leases[2], amount_fen=5000, kind=BillKind.adhoc)
    db.session.commit()
    assert login_as("manager1").get(f"/payments/offline/?bill_id={other.id}").status_code in (302, 403, 404)


def test_the_waive_button_returns_to_the_bill(login_as, bills):
    client = login_as("finance")
    page = actions(client, bills["late"])[1]
    href = re.search(r'id="btn-waive" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    form = client.get(href).get_data(as_text=True)
    assert bills["late"].number in form and 'value="3.50"' in form
    resp = client.post(href, data={"amount": "3.50", "reason": "首次逾期，经批准减免"})
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"/billview/show/{bills['late'].id}")
    db.session.expire_all()
    assert db.session.get(Bill, bills["late"].id).late_fee_fen == 0
    assert "btn-waive" not in actions(client, bills["late"])[0]  # nothing left to waive
