"""GET /bills, /bills/{id}, /bills/{id}/receipt: filters, pagination, detail, receipts, isolation."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.extensions import db
from app.models.enums import BillKind, BillStatus
from app.utils.dates import now_utc, today_local
from tests.api.helpers import assert_error
from tests.factories import make_bill


@pytest.fixture
def bills(market):
    """Bills of merchant A1: overdue, unpaid not yet due, paid, void; plus one bill of merchant A2."""
    lease = market.leases[0]
    today = today_local()
    made = {
        "overdue": make_bill(lease, lines=[("摊位租金", 72000), ("管理费", 5000)], due_date=today - timedelta(days=3),
                             late_fee_fen=120, period=date(2026, 9, 1)),
        "unpaid": make_bill(lease, amount_fen=30000, due_date=today + timedelta(days=10), kind=BillKind.adhoc),
        "paid": make_bill(lease, amount_fen=50000, due_date=today - timedelta(days=40), period=date(2026, 8, 1)),
        "void": make_bill(lease, amount_fen=9900, status=BillStatus.void, due_date=today - timedelta(days=5),
                          period=date(2026, 7, 1)),
        "other": make_bill(market.leases[1], amount_fen=10000, due_date=today - timedelta(days=3)),
    }
    from app.services.payments import record_payment

    record_payment(market.market.id, lease.merchant_id, [made["paid"].id], 50000, "cash", "CASH-T-1",
                   now_utc() - timedelta(days=1))
    db.session.commit()
    return made


def ids(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [item["id"] for item in resp.get_json()["items"]]


def test_list_filters_by_status_and_hides_void_and_other_merchants(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    all_ids = ids(owner.get("bills"))
    assert set(all_ids) == {bills["overdue"].id, bills["unpaid"].id, bills["paid"].id}
    assert set(ids(owner.get("bills?status=unpaid"))) == {bills["overdue"].id, bills["unpaid"].id}
    assert ids(owner.get("bills?status=overdue")) == [bills["overdue"].id]
    assert ids(owner.get("bills?status=paid")) == [bills["paid"].id]
    assert_error(owner.get("bills?status=void"), 422, "validation_failed")


def test_list_items_carry_amounts_in_fen_and_the_overdue_flag(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    body = owner.get("bills?status=overdue").get_json()
    assert (body["page"], body["page_size"], body["total"]) == (1, 20, 1)
    item = body["items"][0]
    assert item["amount_fen"] == 77000 and item["late_fee_fen"] == 120 and item["outstanding_fen"] == 77120
    assert item["is_overdue"] is True and item["status"] == "issued"
    assert isinstance(item["amount_fen"], int)
    unpaid = owner.get("bills?status=unpaid").get_json()["items"]
    assert {i["id"]: i["is_overdue"] for i in unpaid}[bills["unpaid"].id] is False


def test_list_items_name_the_stalls_they_are_for(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    items = owner.get("bills").get_json()["items"]
    assert {i["id"]: i["unit_codes"] for i in items} == {
        bills[name].id: ["A-001"] for name in ("overdue", "unpaid", "paid")
    }


def test_pagination(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    first = owner.get("bills?page_size=2").get_json()
    second = owner.get("bills?page_size=2&page=2").get_json()
    assert first["total"] == second["total"] == 3
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    assert owner.get("bills?page=99999").get_json()["items"] == []
    for query in ("page_size=51", "page_size=0", "page=0", "page=-1", "page=abc", "page=100000000000000000000"):
        assert_error(owner.get(f"bills?{query}"), 422)


def test_bill_detail_has_lines_late_fee_due_date_and_payments(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    detail = owner.get(f"bills/{bills['overdue'].id}").get_json()
    assert [(line["description"], line["amount_fen"]) for line in detail["lines"]] == [("摊位租金", 72000), ("管理费", 5000)]
    assert detail["lines"][0]["unit_code"] == "A-001"
    assert detail["late_fee_fen"] == 120 and detail["is_overdue"] is True
    assert detail["due_date"] == (today_local() - timedelta(days=3)).isoformat()
    assert detail["payments"] == [] and detail["has_receipt"] is False
    assert detail["unit_codes"] == ["A-001"]
    paid = owner.get(f"bills/{bills['paid'].id}").get_json()
    assert paid["status"] == "paid" and paid["has_receipt"] is True and paid["receipt_no"]
    assert [(p["method"], p["amount_fen"]) for p in paid["payments"]] == [("cash", 50000)]


def test_other_merchants_and_void_bills_answer_404(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    for bill_id in (bills["other"].id, bills["void"].id, 999999, -1, 0):
        assert_error(owner.get(f"bills/{bill_id}"), 404)
        assert_error(owner.get(f"bills/{bill_id}/receipt"), 404)
    assert_error(owner.get("bills/abc"), 404, "not_found")


def test_receipt_of_a_paid_bill_is_a_pdf(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    resp = owner.get(f"bills/{bills['paid'].id}/receipt")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/pdf"
    assert resp.data.startswith(b"%PDF")
    assert bills["paid"].receipt_no in resp.headers["Content-Disposition"]


def test_receipt_of_an_unpaid_bill_is_409(mp_client, market, bills):
    owner = mp_client.bound(market.merchants_a[0])
    err = assert_error(owner.get(f"bills/{bills['unpaid'].id}/receipt"), 409, "receipt_unavailable")
    assert "结清" in err["message"]
