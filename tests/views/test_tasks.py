"""The daily task list: meters to read, overdue merchants, tickets, leases to renew; zone scoped."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from app.models.bills import Bill
from app.models.enums import BillStatus, LeaseStatus
from app.models.readings import MeterReading
from app.services.tasks import build_task_list, current_period
from app.utils.dates import add_months, today_local
from tests.factories import LeaseFactory, MeterFactory


def _count(page, section):
    match = re.search(r'id="count-%s">\s*<div class="task-count">(\d+)</div>' % section, page)
    assert match, f"no count card for {section}"
    return int(match.group(1))


def _section(page, section_id):
    start = page.index(f'id="{section_id}"')
    end = page.find('class="panel panel-default task-section"', start + 1)
    return page[start:end if end > 0 else None]


@pytest.fixture
def leases_due(db, market):
    """Zone A: one lease ending in 10 days, one ended 5 days ago but still active.
    Zone B: one lease ending in 3 days."""
    today = today_local()
    a_expiring, a_lapsed, b_expiring = market.leases[0], market.leases[1], market.leases[2]
    a_expiring.end_date = today + timedelta(days=10)
    a_lapsed.start_date = today - timedelta(days=400)
    a_lapsed.end_date = today - timedelta(days=5)
    b_expiring.end_date = today + timedelta(days=3)
    # An ended lease past its date is not a task.
    LeaseFactory(merchant=market.merchants_a[0], market=market.market, zone=market.zone_a, code="L-OLD",
                 start_date=today - timedelta(days=800), end_date=today - timedelta(days=400),
                 status=LeaseStatus.ended)
    db.session.commit()
    return a_expiring, a_lapsed, b_expiring


def test_login_lands_on_task_list(app, staff):
    client = app.test_client()
    resp = client.post("/login/", data={"username": "manager1", "password": "password-123"})
    assert resp.status_code == 302
    resp = client.get("/", follow_redirects=True)
    assert resp.request.path == "/tasks/"
    assert "今日待办" in resp.get_data(as_text=True)


def test_expiring_and_lapsed_leases_scoped_to_manager(login_as, market, leases_due):
    a_expiring, a_lapsed, b_expiring = leases_due
    page = login_as("manager1").get("/tasks/").get_data(as_text=True)
    leases = _section(page, "leases")
    assert f'href="/leaseview/show/{a_expiring.id}">{a_expiring.code}</a>' in leases
    assert f'href="/leaseview/show/{a_lapsed.id}">{a_lapsed.code}</a>' in leases
    assert b_expiring.code not in page and "L-OLD" not in page
    assert _count(page, "leases") == 2
    expiring = leases[leases.index('id="expiring-list"'):]
    lapsed = leases[leases.index('id="lapsed-list"'):leases.index('id="expiring"')]
    assert a_expiring.code in expiring and a_lapsed.code in lapsed
    assert "<td>10</td>" in expiring and "<td>5</td>" in lapsed

    leader = login_as("leader").get("/tasks/").get_data(as_text=True)
    assert b_expiring.code in leader and a_expiring.code in leader
    assert _count(leader, "leases") == 3


def test_meter_counts_scoped_and_follow_readings(app, login_as, market, db):
    period = current_period()
    # Zone A: two unit meters plus a public one; one read for this period, one only for last period.
    public = MeterFactory(unit=None, market=market.market, zone=market.zone_a, number="PUB-A", is_public=True)
    MeterFactory(unit=market.units_a[0], market=market.market, zone=market.zone_a, number="OFF-A", is_active=False)
    read_now, read_before = market.meters[0], market.meters[1]
    for meter, when in ((read_now, period), (read_before, add_months(period, -1))):
        db.session.add(MeterReading(
            market=market.market, meter_id=meter.id, zone_id=meter.zone_id, period=when,
            reading=Decimal("120"), previous_reading=Decimal("100"), consumption=Decimal("20"),
        ))
    db.session.commit()

    page = login_as("manager1").get("/tasks/").get_data(as_text=True)
    assert _count(page, "meters") == 2  # read_before and the public meter
    meters = _section(page, "meters")
    assert read_before.number in meters and "PUB-A" in meters and "公共表" in meters
    assert f">{read_now.number}</a>" not in meters and "OFF-A" not in meters
    assert market.meters[2].number not in page  # zone B
    assert f'<tr data-zone-id="{market.zone_a.id}"><td>A区·蔬菜</td><td class="unread">2</td><td>3</td></tr>' in meters
    assert f'data-zone-id="{market.zone_b.id}"' not in meters
    # Each meter opens the reading entry form for it and the period (the meter page without it).
    if "ReadingImportView.enter" in app.view_functions:
        assert f'href="/imports/readings/enter?meter=PUB-A&amp;period={period:%Y-%m}"' in meters
    else:
        assert f'href="/meterview/show/{public.id}"' in meters

    leader = login_as("leader").get("/tasks/").get_data(as_text=True)
    assert _count(leader, "meters") == 4  # zone B's two meters too
    # Last period: the meter read this period is now outstanding, the one read last period is done.
    last = login_as("manager1").get(f"/tasks/?period={add_months(period, -1):%Y-%m}").get_data(as_text=True)
    assert f">{read_now.number}</a>" in last and f">{read_before.number}</a>" not in last


def _bill(market, lease, number, *, due_days_ago, amount_fen, paid_fen=0, status=BillStatus.issued, months_back=1):
    today = today_local()
    return Bill(
        market=market.market, number=number, status=status, merchant_id=lease.merchant_id, lease_id=lease.id,
        zone_id=lease.zone_id, period=add_months(today.replace(day=1), -months_back),
        issue_date=today - timedelta(days=due_days_ago + 15), due_date=today - timedelta(days=due_days_ago),
        amount_fen=amount_fen, paid_fen=paid_fen,
    )


def test_overdue_merchants_oldest_first_and_scoped(app, login_as, market, db):
    a1, a2, b1 = market.leases[0], market.leases[1], market.leases[2]
    db.session.add_all([
        _bill(market, a1, "B1", due_days_ago=5, amount_fen=10000),
        _bill(market, a2, "B2", due_days_ago=40, amount_fen=20000, paid_fen=5000),
        _bill(market, a2, "B3", due_days_ago=10, amount_fen=1000, months_back=2),
        _bill(market, a1, "B4", due_days_ago=-3, amount_fen=70000, months_back=2),  # not due yet
        _bill(market, b1, "B5", due_days_ago=60, amount_fen=30000),  # zone B
    ])
    db.session.commit()
    page = login_as("manager1").get("/tasks/").get_data(as_text=True)
    assert _count(page, "overdue") == 2
    overdue = _section(page, "overdue")
    # Oldest due date first: 李氏鲜蔬 (a2, 40 days) before 张记蔬菜 (a1, 5 days).
    assert overdue.index("李氏鲜蔬") < overdue.index("张记蔬菜")
    assert "¥160.00" in overdue and "¥100.00" in overdue and "¥700.00" not in overdue
    assert "王记水产" not in page
    assert "合计 ¥260.00" in page
    if "BillView.list" in app.view_functions:
        # The bill count opens that merchant's open, overdue bills.
        merchant = market.merchants_a[1]
        link = re.search(r'href="(/billview/list/\?_flt_0_merchant=%d&[^"]+)">2</a>' % merchant.id, overdue)
        assert link, overdue
        bills = login_as("manager1").get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
        assert "B2" in bills and "B3" in bills and "B1" not in bills and "B4" not in bills
    leader = login_as("leader").get("/tasks/").get_data(as_text=True)
    assert _count(leader, "overdue") == 3 and "王记水产" in leader


def test_tickets_section_is_empty_without_fake_data(login_as, market):
    page = login_as("manager1").get("/tasks/").get_data(as_text=True)
    tickets = _section(page, "tickets")
    assert "待处理工单" in tickets and "暂无" in tickets


def test_repairer_sees_only_tickets(login_as, market):
    resp = login_as("repairer1").get("/tasks/")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'id="tickets"' in page
    assert 'id="meters"' not in page and 'id="leases"' not in page and 'id="overdue"' not in page


def test_lists_are_limited_with_a_more_link(market, staff, db):
    for i in range(5):
        MeterFactory(unit=None, market=market.market, zone=market.zone_a, number=f"X{i}")
    db.session.commit()
    tasks = build_task_list(staff["manager1"], limit=3)
    assert tasks.meters.count == 7 and len(tasks.meters.rows) == 3 and tasks.meters.has_more
