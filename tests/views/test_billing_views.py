"""Back office billing pages: runs (preview, post, progress), bills (overdue red, scope, export),
voids, adjustment bills and one-off charges."""
import io
import re
from datetime import date, timedelta

import openpyxl
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill, BillingRun, Charge
from app.models.enums import BillKind, BillStatus, ChargeStatus
from app.services import billing
from app.utils.dates import today_local
from tests.factories import add_reading, make_bill

NOV = date(2026, 11, 1)


def count_bills():
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Bill))


def post_run(market):
    run = billing.request_billing_run(market.market.id, NOV, issue_date=date(2026, 12, 1))
    db.session.commit()
    billing.post_billing_run(run.id)
    db.session.commit()


def test_preview_page_shows_totals_and_lines_and_posts_nothing(login_as, market):
    add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    client = login_as("admin")
    resp = client.post("/billing/runs/preview", data={"market_id": market.market.id, "period": "2026-11"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/billing/runs/preview/1/2026-11")
    page = client.get("/billing/runs/preview/1/2026-11").get_data(as_text=True)
    assert "¥3,265.00" in page  # 95,500 + 3 x 77,000 fen
    assert "A区·蔬菜" in page and "B区·水产" in page
    assert "电费 EA001 上次 1000 本次 1250" in page and "¥185.00" in page
    assert "EA002" in page  # meters without a reading are listed
    assert count_bills() == 0


def test_preview_pages_through_bills(login_as, market):
    from app.views import billing as billing_views

    client = login_as("admin")
    client.post("/billing/runs/preview", data={"market_id": market.market.id, "period": "2026-11"})
    old = billing_views.PREVIEW_PAGE_SIZE
    billing_views.PREVIEW_PAGE_SIZE = 3
    try:
        first = client.get("/billing/runs/preview/1/2026-11").get_data(as_text=True)
        second = client.get("/billing/runs/preview/1/2026-11?page=1").get_data(as_text=True)
    finally:
        billing_views.PREVIEW_PAGE_SIZE = old
    codes = [lease.code for lease in market.leases]
    assert all(code in first for code in codes[:3]) and codes[3] not in first
    assert codes[3] in second and codes[0] not in second


def test_manager_preview_shows_own_zones_only(login_as, market):
    client = login_as("manager1")
    client.post("/billing/runs/preview", data={"market_id": market.market.id, "period": "2026-11"})
    page = client.get("/billing/runs/preview/1/2026-11").get_data(as_text=True)
    assert market.leases[0].code in page and market.leases[2].code not in page
    assert "B区·水产" not in page


def run_jobs():
    """Run queued billing jobs: a burst worker on real Redis (embedded mode ran them inline)."""
    from rq import SimpleWorker

    from app.queues import get_queue, get_redis, is_embedded

    if not is_embedded():
        SimpleWorker([get_queue("billing")], connection=get_redis()).work(burst=True)


def test_post_button_runs_the_job_and_the_page_reports_progress(login_as, market):
    client = login_as("manager1")
    resp = client.post("/billing/runs/post", data={"market_id": market.market.id, "period": "2026-11",
                                                   "issue_date": "2026-12-01"})
    assert resp.status_code == 302
    run = db.session.scalar(sa.select(BillingRun))
    progress = client.get(f"/billing/runs/{run.id}/progress").get_json()
    assert progress["period"] == "2026-11"
    run_jobs()
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "2026-11 出账完成：4 张账单" in page
    assert count_bills() == 4
    progress = client.get(f"/billing/runs/{run.id}/progress").get_json()
    assert progress["status"] == "posted" and progress["finished"]
    assert progress["done"] == progress["total"] and progress["bill_count"] == 4
    client.post("/billing/runs/post", data={"market_id": market.market.id, "period": "2026-11"})
    run_jobs()
    again = client.get("/billing/runs/").get_data(as_text=True)
    assert "未重复生成账单" in again
    assert count_bills() == 4


def test_leader_reads_but_cannot_post(login_as, market):
    client = login_as("leader")
    assert client.get("/billing/runs/").status_code == 200
    resp = client.post("/billing/runs/post", data={"market_id": market.market.id, "period": "2026-11"})
    assert resp.status_code in (302, 403)
    assert count_bills() == 0


def test_clerk_sees_the_runs_page(login_as, market):
    assert login_as("clerk").get("/billing/runs/").status_code == 200


def test_overdue_bills_show_red_in_the_list(login_as, market):
    today = today_local()
    late = make_bill(market.leases[0], number="LATE-1", kind=BillKind.adhoc, due_date=today - timedelta(days=3))
    fresh = make_bill(market.leases[1], number="FRESH-1", kind=BillKind.adhoc, due_date=today + timedelta(days=3))
    db.session.commit()
    page = login_as("finance").get("/billview/list/").get_data(as_text=True)
    rows = {m.group(2): m.group(1) for m in re.finditer(r'<tr class="([^"]*)" data-bill="(\d+)"', page)}
    assert "bill-overdue" in rows[str(late.id)]
    assert "bill-overdue" not in rows[str(fresh.id)]


def test_manager_sees_only_own_zone_bills_in_list_show_and_export(login_as, market):
    post_run(market)
    a_numbers = {b.number for b in db.session.scalars(sa.select(Bill).where(Bill.zone_id == market.zone_a.id))}
    b_bill = db.session.scalar(sa.select(Bill).where(Bill.zone_id == market.zone_b.id))
    client = login_as("manager1")
    page = client.get("/billview/list/").get_data(as_text=True)
    assert all(n in page for n in a_numbers) and b_bill.number not in page
    assert client.get(f"/billview/show/{b_bill.id}").status_code == 404
    own = db.session.scalar(sa.select(Bill).where(Bill.zone_id == market.zone_a.id))
    detail = client.get(f"/billview/show/{own.id}").get_data(as_text=True)
    assert "摊位租金" in detail and "¥720.00" in detail
    resp = client.get("/billview/export/")
    assert resp.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(resp.data))
    rows = list(book.active.iter_rows(min_row=2, values_only=True))
    assert {row[0] for row in rows} == a_numbers
    assert all(row[7] == 770.0 for row in rows)  # amount column in yuan


def test_bill_list_filters_by_period_and_status(login_as, market):
    post_run(market)
    make_bill(market.leases[0], number="OLD-1", kind=BillKind.adhoc, period=date(2026, 9, 1))
    db.session.commit()
    page = login_as("finance").get("/billview/list/?_flt_0_period=2026-11-01").get_data(as_text=True)
    assert "JJ-202611-000001" in page and "OLD-1" not in page


def test_void_form_needs_a_reason_and_is_audited(login_as, market):
    post_run(market)
    bill = db.session.scalar(sa.select(Bill).order_by(Bill.id))
    client = login_as("finance")
    page = client.post(f"/billview/void/{bill.id}", data={"reason": ""}, follow_redirects=True).get_data(as_text=True)
    assert "作废必须填写原因" in page
    assert db.session.get(Bill, bill.id).status == BillStatus.issued
    resp = client.post(f"/billview/void/{bill.id}", data={"reason": "商户退租，错开账单"}, follow_redirects=True)
    assert "已作废" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.void
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.reason == "商户退租，错开账单",
                                                        AuditLog.table_name == "bills"))
    assert entry.username == "finance"


def test_paid_bill_cannot_be_voided_from_the_page(login_as, market):
    post_run(market)
    bill = db.session.scalar(sa.select(Bill).order_by(Bill.id))
    bill.status, bill.paid_fen = BillStatus.paid, bill.amount_fen
    db.session.commit()
    page = login_as("finance").post(f"/billview/void/{bill.id}", data={"reason": "想作废"},
                                    follow_redirects=True).get_data(as_text=True)
    assert "请先退款" in page
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.paid


def test_manager_cannot_void(login_as, market):
    post_run(market)
    bill = db.session.scalar(sa.select(Bill).where(Bill.zone_id == market.zone_a.id))
    resp = login_as("manager1").post(f"/billview/void/{bill.id}", data={"reason": "x"})
    assert resp.status_code in (302, 403)
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.issued


def test_adjustment_form_issues_an_adjustment_bill(login_as, market):
    post_run(market)
    bill = db.session.scalar(sa.select(Bill).order_by(Bill.id))
    client = login_as("finance")
    resp = client.post(f"/billview/adjust/{bill.id}", data={
        "reason": "补收清运费并给予优惠",
        "lines-0-description": "补收垃圾清运费", "lines-0-amount": "10.00",
        "lines-1-description": "开业优惠", "lines-1-amount": "-3",
    }, follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert "已生成调整账单 JJ-202611-000005（¥7.00）" in page
    adjustment = db.session.scalar(sa.select(Bill).where(Bill.kind == BillKind.adjustment))
    assert adjustment.adjusts_bill_id == bill.id
    assert [line.amount_fen for line in adjustment.lines] == [1000, -300]
    original = client.get(f"/billview/show/{bill.id}").get_data(as_text=True)
    assert "JJ-202611-000005" in original  # listed under the adjustments


def test_charges_added_billed_with_next_run_and_bill_now(login_as, market):
    client = login_as("manager1")
    resp = client.post("/chargeview/new", data={
        "merchant_code": market.merchants_a[0].code, "fee_item_id": 0,
        "description": "更换水龙头", "amount": "120.00",
    }, follow_redirects=True)
    assert "将随下次出账一并收取" in resp.get_data(as_text=True)
    pending = db.session.scalar(sa.select(Charge).where(Charge.description == "更换水龙头"))
    assert pending.status == ChargeStatus.pending and pending.amount_fen == 12000
    resp = client.post("/chargeview/new", data={
        "merchant_code": market.merchants_a[1].code, "lease_code": market.leases[1].code, "fee_item_id": 0,
        "description": "占道罚款", "amount": "50", "bill_now": "y", "issue_date": "2026-11-20",
    }, follow_redirects=True)
    assert "已录入费用并立即出账：账单 JJ-202611-000001" in resp.get_data(as_text=True)
    listing = client.get("/chargeview/list/").get_data(as_text=True)
    assert "更换水龙头" in listing and "占道罚款" in listing
    resp = client.post("/chargeview/action_post", data={"action": "bill_now", "rowid": [str(pending.id)]},
                       follow_redirects=True)
    assert "已出账：JJ-202611-000002" in resp.get_data(as_text=True)
    db.session.expire_all()
    bill = db.session.get(Bill, db.session.get(Charge, pending.id).bill_id)
    assert bill.kind == BillKind.adhoc and bill.amount_fen == 12000 and bill.due_date == today_local() + timedelta(days=15)


def test_manager_cannot_charge_another_zones_merchant(login_as, market):
    client = login_as("manager1")
    form = client.get("/chargeview/new").get_data(as_text=True)
    assert "张记蔬菜" in form and "王记水产" not in form
    page = client.post("/chargeview/new", data={"merchant_code": market.merchants_b[0].code, "fee_item_id": 0,
                                                "description": "越权", "amount": "1"}).get_data(as_text=True)
    assert "不在您负责的片区" in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Charge)) == 0


def test_bill_detail_shows_lines_payments_and_late_fees(login_as, market):
    add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    post_run(market)
    bill = db.session.scalar(sa.select(Bill).where(Bill.lease_id == market.leases[0].id))
    page = login_as("leader").get(f"/billview/show/{bill.id}").get_data(as_text=True)
    assert bill.number in page
    for text in ("管理费", "摊位租金", "电费 EA001", "¥955.00", "¥185.00"):
        assert text in page
    assert 'id="bill-payments"' in page or "No payment yet" in page or "尚无" in page
    assert 'id="btn-void"' not in page  # leader reads only
