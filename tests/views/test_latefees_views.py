"""Back office late fees: rule versions, overview, preview (saves nothing), waivers (Finance, audited)."""
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill
from app.models.latefees import LateFeeAccrual, LateFeeRule, LateFeeWaiver
from app.services.latefees import accrue_late_fees, create_rule
from tests.factories import make_bill


@pytest.fixture
def fees(market):
    """万分之五 from 2026-01-01, 5 grace days; a zone A and a zone B bill accrued through 2026-11-22."""
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_percent=Decimal(10))
    a = make_bill(market.leases[0], amount_fen=100000, due_date=date(2026, 11, 15))
    b = make_bill(market.leases[2], amount_fen=40000, due_date=date(2026, 11, 15))
    db.session.commit()
    accrue_late_fees(market.market.id, date(2026, 11, 22))
    db.session.commit()
    return {"a": a, "b": b}


def test_overview_is_zone_scoped(login_as, fees):
    page = login_as("manager1").get("/late-fees/").get_data(as_text=True)
    assert fees["a"].number in page and fees["b"].number not in page
    assert "¥3.50" in page  # 7 days x 50 fen
    assert "2026-11-22" in page  # accrued through
    leader = login_as("leader").get("/late-fees/").get_data(as_text=True)
    assert fees["a"].number in leader and fees["b"].number in leader
    assert "/late-fees/waive/" not in leader  # Leader reads only


def test_preview_page_saves_nothing(login_as, fees):
    rows_before = db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id)))
    page = login_as("finance").get("/late-fees/preview/?date=2026-11-23").get_data(as_text=True)
    assert "2026-11-23" in page and fees["a"].number in page and "¥0.70" in page  # 50 + 20 fen
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id))) == rows_before
    scoped = login_as("manager2").get("/late-fees/preview/?date=2026-11-23").get_data(as_text=True)
    assert fees["b"].number in scoped and fees["a"].number not in scoped


def test_finance_waives_with_a_reason(login_as, fees):
    client = login_as("finance")
    bill = fees["a"]
    page = client.get(f"/late-fees/waive/{bill.id}").get_data(as_text=True)
    assert 'value="3.50"' in page
    resp = client.post(f"/late-fees/waive/{bill.id}", data={"amount": "2.00", "reason": "首次逾期，经批准减免"})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).late_fee_fen == 150
    waiver = db.session.scalars(sa.select(LateFeeWaiver)).one()
    assert waiver.amount_fen == 200 and waiver.created_by.username == "finance"
    entry = db.session.scalars(sa.select(AuditLog).where(AuditLog.table_name == "bills",
                                                         AuditLog.reason.like("%首次逾期%"))).one()
    assert entry.username == "finance"
    too_much = client.post(f"/late-fees/waive/{bill.id}", data={"amount": "1.51", "reason": "再减"})
    assert "超过未付滞纳金" in too_much.get_data(as_text=True)


def test_waiving_is_for_finance_only_and_in_scope(login_as, fees):
    assert login_as("manager1").get(f"/late-fees/waive/{fees['a'].id}").status_code in (302, 403)
    assert login_as("leader").post(f"/late-fees/waive/{fees['a'].id}",
                                   data={"amount": "1", "reason": "x"}).status_code in (302, 403)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(LateFeeWaiver.id))) == 0


def test_finance_adds_a_rule_version_and_past_days_are_refused(login_as, market, fees):
    client = login_as("finance")
    page = client.get(f"/latefeeruleview/add/?market_id={market.market.id}").get_data(as_text=True)
    assert "2026-11-22" in page  # accrued through
    data = {"market_id": market.market.id, "lease_id": "0", "effective_from": "2026-11-20", "daily_rate": "万分之三",
            "grace_days": "5", "cap_yuan": "", "cap_percent": "10", "is_active": "y", "note": ""}
    refused = client.post("/latefeeruleview/add/", data=data).get_data(as_text=True)
    assert "已计提" in refused
    data["effective_from"] = "2026-12-01"
    assert client.post("/latefeeruleview/add/", data=data).status_code == 302
    db.session.expire_all()
    rule = db.session.scalars(sa.select(LateFeeRule).where(LateFeeRule.effective_from == date(2026, 12, 1))).one()
    assert rule.daily_rate == Decimal("0.0003") and rule.cap_percent == Decimal(10) and rule.lease_id is None
    listing = client.get("/latefeeruleview/list/").get_data(as_text=True)
    assert "2026-12-01" in listing and "全市场" in listing
    data["lease_id"] = str(market.leases[1].id)
    data["effective_from"] = "2026-12-05"
    data["cap_yuan"] = "20"
    assert client.post("/latefeeruleview/add/", data=data).status_code == 302
    db.session.expire_all()
    override = db.session.scalars(sa.select(LateFeeRule).where(LateFeeRule.lease_id == market.leases[1].id)).one()
    assert override.cap_fen == 2000
    assert login_as("leader").get(f"/latefeeruleview/add/?market_id={market.market.id}").status_code in (302, 403)
    assert login_as("leader").get("/latefeeruleview/list/").status_code == 200


def test_accrual_and_waiver_lists_are_scoped(login_as, fees):
    page = login_as("manager2").get("/latefeeaccrualview/list/").get_data(as_text=True)
    assert fees["b"].number in page and fees["a"].number not in page
