"""The demo market is believable and built once."""
import sqlalchemy as sa

from app.extensions import db
from app.models import Lease, Market, Merchant, Meter, Unit, Zone, lease_units
from app.services.demo import DemoRefused, seed_demo


def test_seed_builds_a_market_once(app, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    first = seed_demo(stalls=300)
    db.session.commit()
    assert first["created"] is True
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Zone)) >= 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Unit)) == 300
    positioned = db.session.scalar(
        sa.select(sa.func.count()).select_from(Unit).where(Unit.plan_x.is_not(None), Unit.plan_w > 0)
    )
    assert positioned == 300
    merchants = db.session.scalars(sa.select(Merchant.name).limit(5)).all()
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in merchants)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lease)) == first["leases"] > 200
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Meter)) == 600
    sm = app.appbuilder.sm
    for username in ("admin", "leader", "manager1", "manager2", "clerk", "finance", "repairer1"):
        assert sm.auth_user_db(username, "demo-password-1") is not None
    manager1 = sm.find_user(username="manager1")
    zone_a = db.session.scalar(sa.select(Zone).where(Zone.code == "A"))
    assert [z.code for z in db.session.scalars(sa.select(Zone)) if manager1 in z.managers] == ["A"]
    assert zone_a is not None

    second = seed_demo(stalls=300)
    db.session.commit()
    assert second["created"] is False
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Market)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Unit)) == 300


def test_seed_refuses_under_production_config(app):
    app.config["DEMO_ALLOWED"] = False
    try:
        try:
            seed_demo(stalls=10)
        except DemoRefused as exc:
            assert "生产" in exc.message
        else:
            raise AssertionError("seed_demo ran with the production config")
    finally:
        app.config["DEMO_ALLOWED"] = True
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Market)) == 0


def test_demo_stalls_do_not_overlap_on_the_plan(app):
    seed_demo(stalls=120)
    db.session.commit()
    rows = db.session.execute(sa.select(Unit.zone_id, Unit.plan_x, Unit.plan_y, Unit.plan_w, Unit.plan_h)).all()
    by_zone = {}
    for zone_id, x, y, w, h in rows:
        by_zone.setdefault(zone_id, []).append((x, y, x + w, y + h))
    for boxes in by_zone.values():
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                assert not overlap, (a, b)


# --- history: readings, posted bills, payments and late fees made by the real services ------------


def _counts():
    from app.models import AuditLog, Bill, BillingRun, LateFeeAccrual, LateFeeRule
    from app.models.payments import Payment, PaymentAllocation
    from app.models.readings import ImportBatch, MeterReading
    from app.models.tickets import Ticket, TicketEvent, TicketPhoto

    return {
        model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (MeterReading, ImportBatch, BillingRun, Bill, Payment, PaymentAllocation, LateFeeAccrual,
                      LateFeeRule, AuditLog, Merchant, Lease, Meter, Ticket, TicketEvent, TicketPhoto)
    }


def test_seed_builds_recent_history_through_the_services(app, monkeypatch):
    from app.models import Bill, BillingRun, LateFeeAccrual
    from app.models.enums import BillStatus, PaymentMethod, RunStatus
    from app.models.payments import Payment, PaymentAllocation
    from app.models.readings import ImportBatch, MeterReading
    from app.services.billing import overdue_clause
    from app.services.demo import DEMO_MERCHANT_CODE, DEMO_MERCHANT_PHONE, history_periods
    from app.services.stallmap import unit_arrears
    from app.services.tasks import build_task_list
    from app.utils.dates import period_str, today_local

    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    result = seed_demo(stalls=40)
    db.session.commit()
    periods = history_periods(3)
    assert [period_str(p) for p in periods] == result["history"].periods
    assert periods[-1] < today_local().replace(day=1)

    # Meters read every month (one import batch each, through the readings import), three runs posted.
    meters = db.session.scalar(sa.select(sa.func.count()).select_from(Meter))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MeterReading)) == 3 * meters == 3 * 80
    batches = db.session.scalars(sa.select(ImportBatch).order_by(ImportBatch.id)).all()
    assert [(b.source, b.inserted_count, b.rejected_count) for b in batches] == [("demo", meters, 0)] * 3
    unbilled_leased = db.session.scalar(
        sa.select(sa.func.count()).select_from(MeterReading).join(Meter, Meter.id == MeterReading.meter_id)
        .join(Unit, Unit.id == Meter.unit_id).where(Unit.status == "leased", MeterReading.bill_id.is_(None))
    )
    assert unbilled_leased == 0
    runs = db.session.execute(sa.select(BillingRun.period, BillingRun.status).order_by(BillingRun.period)).all()
    assert runs == [(p, RunStatus.posted) for p in periods]
    leases = db.session.scalar(sa.select(sa.func.count()).select_from(Lease))
    per_period = dict(db.session.execute(sa.select(Bill.period, sa.func.count()).group_by(Bill.period)).all())
    assert set(per_period) == set(periods) and all(0 < n <= leases for n in per_period.values())

    # Most bills paid (offline, one payment per bill, allocations adding up), a realistic share open.
    statuses = dict(db.session.execute(sa.select(Bill.status, sa.func.count()).group_by(Bill.status)).all())
    total = sum(statuses.values())
    assert statuses[BillStatus.paid] > total / 2
    assert statuses[BillStatus.issued] > 0 and statuses[BillStatus.partially_paid] > 0
    payments = db.session.scalars(sa.select(Payment)).all()
    assert {p.method for p in payments} == {PaymentMethod.cash, PaymentMethod.bank_transfer}
    assert all(p.transaction_id.startswith("DEMO-") for p in payments)
    allocated = db.session.scalar(sa.select(sa.func.sum(PaymentAllocation.amount_fen)))
    assert allocated == sum(p.amount_fen for p in payments) == db.session.scalar(sa.select(sa.func.sum(Bill.paid_fen)))
    paid = db.session.scalars(sa.select(Bill).where(Bill.status == BillStatus.paid)).all()
    assert all(b.receipt_no and b.paid_fen == b.amount_fen + b.late_fee_fen for b in paid)

    # Overdue bills carry late fees accrued by the late-fee service.
    overdue = db.session.scalars(sa.select(Bill).where(overdue_clause())).all()
    assert overdue and sum(b.late_fee_fen for b in overdue) > 0
    accrued = db.session.scalar(sa.select(sa.func.sum(LateFeeAccrual.amount_fen)))
    assert accrued == db.session.scalar(sa.select(sa.func.sum(Bill.late_fee_fen))) > 0

    # The walk-through merchant: oldest bill paid, the last two unpaid, the older of them with a late fee.
    merchant = db.session.scalar(sa.select(Merchant).where(Merchant.code == DEMO_MERCHANT_CODE))
    assert merchant.phone == DEMO_MERCHANT_PHONE
    bills = db.session.scalars(sa.select(Bill).where(Bill.merchant_id == merchant.id).order_by(Bill.period)).all()
    assert [(b.period, b.status) for b in bills] == [
        (periods[0], BillStatus.paid), (periods[1], BillStatus.issued), (periods[2], BillStatus.issued)]
    assert bills[1].is_overdue_on(today_local()) and bills[1].late_fee_fen > 0
    assert bills[2].late_fee_fen == 0 or bills[2].is_overdue_on(today_local())

    # The stall map shows its arrears; the leader's task list shows it among the overdue merchants.
    unit_id = db.session.scalar(sa.select(lease_units.c.unit_id).where(lease_units.c.lease_id == bills[1].lease_id))
    assert unit_arrears(merchant.zone_id)[unit_id] >= bills[1].outstanding_fen
    leader = app.appbuilder.sm.find_user(username="leader")
    tasks = build_task_list(leader)
    assert tasks.overdue.count >= 2 and merchant.id in {row[0] for row in tasks.overdue.rows}


def test_seed_again_creates_nothing_new(app):
    seed_demo(stalls=40)
    db.session.commit()
    before = _counts()
    again = seed_demo(stalls=40)
    db.session.commit()
    assert again["created"] is False and again["history"].periods == []
    assert _counts() == before


def test_seed_without_history_then_with_it(app):
    from app.models import Bill
    from app.models.readings import MeterReading

    seed_demo(stalls=20, history_months=0)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MeterReading)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bill)) == 0
    later = seed_demo(stalls=20, history_months=2)
    db.session.commit()
    assert later["created"] is False and len(later["history"].periods) == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MeterReading)) == 2 * 40
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bill)) == later["history"].bills > 0


def test_seed_demo_cli_reports_history(app, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["market", "seed-demo", "--stalls", "20", "--months", "2"])
    assert first.exit_code == 0, first.output
    assert "演示历史" in first.output and "13800000001" in first.output
    again = runner.invoke(args=["market", "seed-demo", "--stalls", "20", "--months", "2"])
    assert again.exit_code == 0 and "未重复生成" in again.output and "演示历史：" not in again.output


def test_walk_through_merchant_sees_its_unpaid_bills(app, fake_wechat):
    """The docs' walk-through: log in with code-<openid>, bind with phone-<phone>, list the unpaid bills."""
    import uuid

    from app.services.demo import DEMO_MERCHANT_PHONE

    seed_demo(stalls=20)
    db.session.commit()
    client = app.test_client()
    login = client.post("/api/mp/v1/auth/login", json={"code": f"code-demo-{uuid.uuid4().hex[:12]}"})
    assert login.status_code == 200, login.get_data(as_text=True)
    auth = {"Authorization": f"Bearer {login.get_json()['token']}"}
    bind = client.post("/api/mp/v1/auth/bind", json={"phone_code": f"phone-{DEMO_MERCHANT_PHONE}"}, headers=auth)
    assert bind.status_code == 200, bind.get_data(as_text=True)
    unpaid = client.get("/api/mp/v1/bills?status=unpaid", headers=auth)
    assert unpaid.status_code == 200
    items = unpaid.get_json()["items"]
    assert len(items) == 2
    assert any(item.get("is_overdue") for item in items), items


def test_demo_tickets_cover_every_state_and_are_filed_once(app):
    from app.models.tickets import Ticket, TicketPhoto
    from app.services.tickets import photo_path

    seed_demo(stalls=40)
    db.session.commit()
    tickets = db.session.scalars(sa.select(Ticket).order_by(Ticket.id)).all()
    assert {t.status.value for t in tickets} == {"submitted", "in_progress", "resolved", "closed"}
    assert {t.kind.value for t in tickets} == {"repair", "complaint", "suggestion"}
    assert [t.rating for t in tickets if t.status.value == "closed"] == [5]
    assert all(t.assignee is not None and t.assignee.username == "repairer1"
               for t in tickets if t.status.value != "submitted")
    photos = db.session.scalars(sa.select(TicketPhoto)).all()
    assert photos and all(photo_path(p).read_bytes().startswith(b"\x89PNG") for p in photos)
    seed_demo(stalls=40)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count(Ticket.id))) == len(tickets)
