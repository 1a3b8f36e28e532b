"""The stall map: units drawn by status, zone scope, arrears, and one query for the units."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.models.bills import Bill
from app.models.enums import BillStatus, UnitStatus
from app.services.stallmap import build_stall_map, parse_polygon, unit_arrears
from app.utils.dates import add_months, today_local
from tests.factories import UnitFactory


def _unit_tag(page, code):
    """The <a ...> tag that draws the unit with the given code."""
    match = re.search(r'<a href="[^"]*"\s+class="([^"]*)"\s+data-unit-id="(\d+)" data-code="%s"' % re.escape(code), page)
    assert match, f"unit {code} not drawn"
    return match.group(1).split(), int(match.group(2))


def _add_bill(market, lease, *, due_days_ago, amount_fen, paid_fen=0, late_fee_fen=0, status=BillStatus.issued, n=[0]):
    """An issued bill of the lease that fell due `due_days_ago` days ago (negative: not yet due)."""
    from app.extensions import db

    n[0] += 1
    today = today_local()
    bill = Bill(
        market=market.market, number=f"B-TEST-{n[0]}", status=status, merchant_id=lease.merchant_id,
        lease_id=lease.id, zone_id=lease.zone_id, period=add_months(today.replace(day=1), -n[0]),
        issue_date=today - timedelta(days=due_days_ago + 15), due_date=today - timedelta(days=due_days_ago),
        amount_fen=amount_fen, paid_fen=paid_fen, late_fee_fen=late_fee_fen,
    )
    db.session.add(bill)
    db.session.flush()
    return bill


@pytest.fixture
def zone_a_statuses(db, market):
    """Zone A also gets a vacant, a reserved and a renovating unit (one drawn as a polygon)."""
    extra = {
        "A-101": UnitFactory(zone=market.zone_a, market=market.market, code="A-101", status=UnitStatus.vacant),
        "A-102": UnitFactory(zone=market.zone_a, market=market.market, code="A-102", status=UnitStatus.reserved),
        "A-103": UnitFactory(
            zone=market.zone_a, market=market.market, code="A-103", status=UnitStatus.renovating,
            plan_polygon="60,40 70,40 70,48 60,48",
        ),
    }
    db.session.commit()
    return extra


def test_map_draws_zone_units_coloured_by_status(login_as, market, zone_a_statuses):
    page = login_as("manager1").get("/stall-map/").get_data(as_text=True)
    assert "<svg" in page and 'class="stall-map"' in page
    assert 'viewBox="0 0 100 60"' in page
    classes, unit_id = _unit_tag(page, "A-001")
    assert "unit-leased" in classes and unit_id == market.units_a[0].id
    assert "unit-vacant" in _unit_tag(page, "A-101")[0]
    assert "unit-reserved" in _unit_tag(page, "A-102")[0]
    assert "unit-renovating" in _unit_tag(page, "A-103")[0]
    assert '<polygon points="60,40 70,40 70,48 60,48">' in page
    # Clicking a unit opens its detail page; hovering shows tenant, area and status.
    assert f'href="/unitview/show/{market.units_a[0].id}"' in page
    assert "<title>A-001 · 张记蔬菜 · 12 m² · 已租" in page
    # Legend with counts per status (zone A only).
    for status, count in (("vacant", 1), ("leased", 2), ("reserved", 1), ("renovating", 1)):
        assert f'<span class="count" data-status="{status}">{count}</span>' in page
    assert "B-001" not in page


def test_manager_gets_404_for_other_zone(login_as, market):
    client = login_as("manager1")
    assert client.get(f"/stall-map/?zone_id={market.zone_b.id}").status_code == 404
    assert client.get(f"/stall-map/?zone_id={market.zone_a.id}").status_code == 200
    assert client.get("/stall-map/?zone_id=999999").status_code == 404
    # The zone picker offers only the manager's zones.
    page = client.get("/stall-map/").get_data(as_text=True)
    assert f'<option value="{market.zone_b.id}"' not in page


def test_leader_sees_any_zone(login_as, market):
    client = login_as("leader")
    page = client.get(f"/stall-map/?zone_id={market.zone_b.id}").get_data(as_text=True)
    assert "B区·水产" in page and "unit-leased" in _unit_tag(page, "B-001")[0]
    assert "王记水产" in page
    assert f'<option value="{market.zone_a.id}"' in page and f'<option value="{market.zone_b.id}"' in page


def test_repairer_has_no_map(login_as, market):
    resp = login_as("repairer1").get("/stall-map/")
    assert resp.status_code in (302, 403)


def test_arrears_outline_and_hook(login_as, market, db):
    lease_a1, lease_a2 = market.leases[0], market.leases[1]
    _add_bill(market, lease_a1, due_days_ago=10, amount_fen=50000, paid_fen=20000, late_fee_fen=150)
    _add_bill(market, lease_a1, due_days_ago=40, amount_fen=10000)
    _add_bill(market, lease_a1, due_days_ago=-5, amount_fen=99900)  # not yet due
    _add_bill(market, lease_a2, due_days_ago=10, amount_fen=30000, paid_fen=30000, status=BillStatus.paid)
    _add_bill(market, lease_a2, due_days_ago=10, amount_fen=30000, status=BillStatus.void)
    db.session.commit()

    unit_a1, unit_a2 = market.units_a
    assert unit_arrears(market.zone_a.id) == {unit_a1.id: 50000 - 20000 + 150 + 10000}
    assert unit_arrears(market.zone_b.id) == {}

    page = login_as("manager1").get("/stall-map/").get_data(as_text=True)
    assert "unit-arrears" in _unit_tag(page, "A-001")[0]
    assert "unit-arrears" not in _unit_tag(page, "A-002")[0]
    assert "逾期欠费 ¥401.50" in page
    assert '<span class="count" data-status="arrears">1</span>' in page


def test_units_are_loaded_in_one_query(app, db, market, staff):
    """The map's query count does not grow with the number of units (no N+1)."""
    zone_id, leader = market.zone_a.id, staff["leader"]

    def queries_for_map():
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        build_stall_map(zone_id, leader)  # warm the user's roles, as a request would have
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            stall_map = build_stall_map(zone_id, leader)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        return stall_map, len(statements)

    small, small_count = queries_for_map()
    for i in range(30):
        UnitFactory(zone=market.zone_a, market=market.market, code=f"A-2{i:02d}")
    db.session.commit()
    big, big_count = queries_for_map()
    assert big.total == small.total + 30
    # The zone, its units (with lease and merchant), the arrears per unit.
    assert big_count == small_count == 3


def test_unit_with_ended_and_current_lease_is_drawn_once(login_as, market, db):
    from app.models.enums import LeaseStatus
    from tests.factories import LeaseFactory

    unit = market.units_a[0]
    old = LeaseFactory(merchant=market.merchants_a[1], market=market.market, zone=market.zone_a,
                       status=LeaseStatus.ended)
    old.units.append(unit)
    db.session.commit()
    page = login_as("leader").get(f"/stall-map/?zone_id={market.zone_a.id}").get_data(as_text=True)
    assert page.count('data-code="A-001"') == 1
    assert "<title>A-001 · 张记蔬菜" in page


def test_parse_polygon():
    assert parse_polygon("1,2 3,4 5,6") == [(Decimal(1), Decimal(2)), (Decimal(3), Decimal(4)), (Decimal(5), Decimal(6))]
    assert parse_polygon("") is None
    assert parse_polygon("1,2 3,4") is None
    assert parse_polygon("a,b c,d e,f") is None
