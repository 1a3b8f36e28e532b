"""The billing run: prices, cycles, proration, tiers, apportionment, preview, posting, re-runs.

The worked examples are the ones in docs/billing.md, number for number.
"""
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill, BillingRun, BillLine, Charge, FeeTier, LeaseFee
from app.models.bills import BillingStagedLine
from app.models.enums import BillingCycle, BillKind, BillStatus, ChargeStatus, RunStatus
from app.models.readings import MeterReading
from app.services import billing
from app.services.exceptions import ValidationFailed
from tests.factories import LeaseFactory, MerchantFactory, MeterFactory, UnitFactory, add_reading

NOV = date(2026, 11, 1)  # 30 days
MAR = date(2026, 3, 1)  # 31 days


def post(market, period, issue_date=None):
    """Request and post a run (as the CLI does); returns the RunResult."""
    run = billing.request_billing_run(market.market.id, period, issue_date=issue_date)
    db.session.commit()
    result = billing.post_billing_run(run.id)
    db.session.commit()
    db.session.expire_all()
    return result


def bill_of(lease, period=NOV, kind=BillKind.regular):
    return db.session.scalar(
        sa.select(Bill).where(Bill.lease_id == lease.id, Bill.period == period, Bill.kind == kind,
                              Bill.status != BillStatus.void)
    )


def lines_by_kind(bill):
    return {line.description.split(" ")[0]: line for line in bill.lines}


def test_tiered_price_computed_by_hand(market):
    """250 kWh with tiers 0-200 at 68 and >200 at 98 fen = 200*68 + 50*98 = 18,500 fen."""
    add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    post(market, NOV)
    bill = bill_of(market.leases[0])
    power = [line for line in bill.lines if line.meter_id == market.meters[0].id]
    assert len(power) == 1
    assert power[0].amount_fen == 18500
    assert power[0].quantity == Decimal("250")
    assert "上次 1000 本次 1250" in power[0].description
    assert "阶梯 0-200@0.68 200以上@0.98元/kWh" in power[0].description
    # 管理费 5000 + 摊位租金 12 m² x 6000 = 72000 + 电费 18500
    assert [line.amount_fen for line in bill.lines] == [5000, 72000, 18500]
    assert bill.amount_fen == 95500 == sum(line.amount_fen for line in bill.lines)
    assert billing.tiered_amount_fen(Decimal(250), [(0, 200, 68), (200, None, 98)]) == 18500


def test_proration_lease_starting_on_the_11th(market):
    """A lease from 11 November (30-day month) pays 20/30 of its fixed fees, half-up to fen."""
    lease = market.leases[0]
    lease.start_date = date(2026, 11, 11)
    # A negotiated management fee of 45.0075 yuan: 4500.75 x 20/30 = 3000.5 -> 3001 fen (half-up)
    for fee in lease.fees:
        fee.effective_from = lease.start_date
        if fee.fee_item.code == "MGMT":
            fee.rate_fen = Decimal("4500.75")
    db.session.commit()
    post(market, NOV)
    lines = lines_by_kind(bill_of(lease))
    assert lines["管理费"].amount_fen == 3001
    assert "(按天 20/30)" in lines["管理费"].description
    assert lines["管理费"].service_start == date(2026, 11, 11)
    # 12 m² x 6000 x 20/30 = 48000
    assert lines["摊位租金"].amount_fen == 48000
    assert billing.prorated_amount_fen(Decimal("4500.75"), Decimal(1), 1, 20, 30) == 3001


def test_lease_ending_inside_the_period_is_prorated(market):
    lease = market.leases[1]
    lease.end_date = date(2026, 11, 15)
    db.session.commit()
    post(market, NOV)
    lines = lines_by_kind(bill_of(lease))
    assert lines["管理费"].amount_fen == 2500  # 5000 x 15/30
    assert lines["摊位租金"].amount_fen == 36000  # 72000 x 15/30
    assert lines["管理费"].service_end == date(2026, 11, 15)


def test_quarterly_cycle_bills_three_months_in_the_first_month_of_each_quarter(market):
    lease = market.leases[0]  # starts 2026-01-01
    lease.billing_cycle = BillingCycle.quarterly
    db.session.commit()
    for month in (1, 2, 3, 4):
        period = date(2026, month, 1)
        add_reading(market.meters[0], period, 10, previous=1000 + 10 * month)
        db.session.commit()
        post(market, period)
    jan = lines_by_kind(bill_of(lease, date(2026, 1, 1)))
    assert jan["管理费"].amount_fen == 15000  # 3 x 5000
    assert jan["管理费"].quantity == 3
    assert jan["摊位租金"].amount_fen == 216000  # 3 x 72000
    assert jan["管理费"].service_end == date(2026, 3, 31)
    feb = bill_of(lease, date(2026, 2, 1))
    assert [line.amount_fen for line in feb.lines] == [680]  # only the metered line, 10 kWh x 68
    assert bill_of(lease, date(2026, 3, 1)).amount_fen == 680
    assert lines_by_kind(bill_of(lease, date(2026, 4, 1)))["管理费"].amount_fen == 15000


def test_quarterly_lease_starting_mid_month_is_prorated_over_its_quarter(market):
    """Quarters count from the lease start: 11 Feb -> window Feb-Apr (89 days), 79 days leased."""
    lease = market.leases[0]
    lease.start_date = date(2026, 2, 11)
    lease.billing_cycle = BillingCycle.quarterly
    for fee in lease.fees:
        fee.effective_from = lease.start_date
    db.session.commit()
    post(market, date(2026, 2, 1))
    lines = lines_by_kind(bill_of(lease, date(2026, 2, 1)))
    assert lines["管理费"].amount_fen == 13315  # 15000 x 79 / 89 = 13314.6
    assert lines["管理费"].service_end == date(2026, 4, 30)
    assert "(按天 79/89)" in lines["管理费"].description


def test_yearly_cycle(market):
    lease = market.leases[0]
    lease.billing_cycle = BillingCycle.yearly
    db.session.commit()
    post(market, date(2026, 1, 1))
    assert lines_by_kind(bill_of(lease, date(2026, 1, 1)))["管理费"].amount_fen == 60000
    post(market, date(2026, 2, 1))
    assert bill_of(lease, date(2026, 2, 1)) is None  # nothing to bill: no bill at all


def test_per_area_fee_with_two_units(market):
    lease = market.leases[0]
    lease.units.append(UnitFactory(zone=market.zone_a, market=market.market, code="A-003", area_m2=Decimal("8.5")))
    db.session.commit()
    post(market, NOV)
    rent = lines_by_kind(bill_of(lease))["摊位租金"]
    assert rent.quantity == Decimal("20.5")
    assert rent.amount_fen == 123000  # (12 + 8.5) m² x 6000


def test_latest_price_row_up_to_the_period_end_applies(market):
    lease = market.leases[0]
    rent = market.fee_items["rent"]
    db.session.add_all([
        LeaseFee(market=market.market, lease=lease, fee_item=rent, effective_from=date(2026, 11, 30),
                 rate_fen=Decimal("6500")),
        LeaseFee(market=market.market, lease=lease, fee_item=rent, effective_from=date(2026, 12, 1),
                 rate_fen=Decimal("7000")),
    ])
    db.session.commit()
    post(market, NOV)
    assert lines_by_kind(bill_of(lease))["摊位租金"].amount_fen == 78000  # 12 x 6500
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LeaseFee).where(LeaseFee.lease_id == lease.id)) == 5


def test_metered_without_tiers_uses_lease_price_or_item_default(market):
    db.session.execute(sa.delete(FeeTier))
    lease_fee = next(f for f in market.leases[0].fees if f.fee_item.code == "POWER")
    lease_fee.rate_fen = Decimal("75.5")
    add_reading(market.meters[0], NOV, Decimal("10.3"))
    add_reading(market.meters[1], NOV, Decimal("10.3"))
    db.session.commit()
    post(market, NOV)
    first = [line for line in bill_of(market.leases[0]).lines if line.meter_id][0]
    second = [line for line in bill_of(market.leases[1]).lines if line.meter_id][0]
    assert first.amount_fen == 778  # 10.3 x 75.5 = 777.65 -> 778
    assert first.rate_fen == Decimal("75.5")
    assert second.amount_fen == 700  # 10.3 x 68 = 700.4


def test_rollover_reading_is_billed_from_its_consumption(market):
    add_reading(market.meters[0], NOV, 80, previous=99950, reading=30, is_rollover=True)
    db.session.commit()
    post(market, NOV)
    line = [line for line in bill_of(market.leases[0]).lines if line.meter_id][0]
    assert line.quantity == 80
    assert line.amount_fen == 5440  # 80 x 68
    assert "上次 99950 本次 30 (翻表)" in line.description


def test_public_meter_is_apportioned_by_area_and_sums_exactly(market):
    """14.72 kWh x 68 = 1000.96 -> 1001 fen over zone A's units of 12 and 18 m² -> 400 + 601."""
    market.units_a[1].area_m2 = Decimal(18)
    public = MeterFactory(unit=None, market=market.market, zone=market.zone_a, number="PA-01", is_public=True)
    add_reading(public, NOV, Decimal("14.72"))
    db.session.commit()
    result = post(market, NOV)
    shares = db.session.scalars(sa.select(BillLine).where(BillLine.meter_id == public.id).order_by(BillLine.amount_fen)).all()
    assert [s.amount_fen for s in shares] == [400, 601]
    assert sum(s.amount_fen for s in shares) == 1001
    assert "公摊电费 PA-01" in shares[0].description and "12/30m²" in shares[0].description
    zone_b_bills = {bill_of(lease).id for lease in market.leases[2:]}
    assert not {s.bill_id for s in shares} & zone_b_bills
    reading = db.session.scalar(sa.select(MeterReading).where(MeterReading.meter_id == public.id))
    assert reading.billed_dt is not None and reading.bill_id is None
    assert result.unapportioned == []


def test_missing_readings_leave_no_metered_line_and_are_reported(market):
    add_reading(market.meters[0], NOV, 100)
    db.session.commit()
    result = post(market, NOV)
    assert sorted(m.number for m in result.missing) == ["EA002", "EB001", "EB002"]
    assert not [line for line in bill_of(market.leases[1]).lines if line.meter_id]
    run = db.session.get(BillingRun, result.run_id)
    assert run.report["missing_readings"] == 3
    assert "EA002" in run.report["missing_sample"]
    assert "3 块表本期没有抄表读数" in result.message


def test_readings_billed_get_bill_id_and_billed_dt(market):
    reading = add_reading(market.meters[0], NOV, 100)
    db.session.commit()
    post(market, NOV)
    db.session.refresh(reading)
    assert reading.bill_id == bill_of(market.leases[0]).id
    assert reading.billed_dt is not None


def test_preview_posts_nothing(market):
    reading = add_reading(market.meters[0], NOV, 250)
    charge = Charge(market=market.market, merchant=market.merchants_a[0], zone=market.zone_a,
                    description="维修费", amount_fen=1500)
    db.session.add(charge)
    db.session.commit()
    result = billing.preview_billing(market.market.id, NOV)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bill)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BillingRun)) == 0
    db.session.refresh(reading)
    db.session.refresh(charge)
    assert reading.billed_dt is None and charge.status == ChargeStatus.pending
    assert result.summary.bills == 4
    assert result.summary.total_fen == 95500 + 1500 + 3 * 77000
    assert [(z.zone_name, z.bills, z.total_fen) for z in result.summary.zones] == [
        ("A区·蔬菜", 2, 95500 + 1500 + 77000), ("B区·水产", 2, 154000)]
    page = billing.staged_bills(result.batch, page=0, page_size=1)
    assert len(page) == 1 and page[0].lease_code == market.leases[0].code
    assert [line.amount_fen for line in page[0].lines] == [5000, 72000, 18500, 1500]
    only_b = billing.summarize_batch(result.batch, zone_ids={market.zone_b.id})
    assert only_b.bills == 2 and only_b.total_fen == 154000
    posted = post(market, NOV)
    assert posted.new_total_fen == result.summary.total_fen
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BillingStagedLine)) == 0


def test_posting_twice_creates_no_duplicates_and_new_leases_are_billed_by_rerunning(market):
    first = post(market, NOV)
    assert first.new_bills == 4 and not first.was_posted
    numbers = sorted(db.session.scalars(sa.select(Bill.number)))
    assert numbers == [f"JJ-202611-{n:06d}" for n in (1, 2, 3, 4)]
    again = post(market, NOV)
    assert again.new_bills == 0 and again.was_posted
    assert "已过账" in again.message and "未重复生成账单" in again.message
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bill)) == 4
    # A lease signed after the run is billed by running the period again.
    unit = UnitFactory(zone=market.zone_b, market=market.market, code="B-003")
    lease = LeaseFactory(merchant=MerchantFactory(zone=market.zone_b, market=market.market, name="新来水产"),
                         market=market.market, zone=market.zone_b, start_date=date(2026, 11, 16))
    lease.units.append(unit)
    db.session.add(LeaseFee(market=market.market, lease=lease, fee_item=market.fee_items["mgmt"],
                            effective_from=date(2026, 11, 16)))
    db.session.commit()
    third = post(market, NOV)
    assert third.new_bills == 1 and third.was_posted
    new_bill = bill_of(lease)
    assert new_bill.number == "JJ-202611-000005"
    assert new_bill.amount_fen == 2500  # 5000 x 15/30
    run = db.session.get(BillingRun, third.run_id)
    assert run.bill_count == 5 and run.status == RunStatus.posted
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BillingRun)) == 1


def test_bill_dates_follow_the_market_rule(market):
    result = post(market, NOV, issue_date=date(2026, 12, 1))
    bill = bill_of(market.leases[0])
    assert bill.issue_date == date(2026, 12, 1)
    assert bill.due_date == date(2026, 12, 16)  # due_days = 15
    assert bill.status == BillStatus.issued and bill.kind == BillKind.regular and bill.run_id == result.run_id


def test_issue_date_defaults_to_the_posting_day_in_shanghai(market):
    from app.utils.dates import today_local

    post(market, NOV)
    bill = bill_of(market.leases[0])
    assert bill.issue_date == today_local()
    assert bill.due_date == today_local() + timedelta(days=15)


def test_draft_and_finished_leases_are_not_billed(market):
    from app.models.enums import LeaseStatus

    market.leases[0].status = LeaseStatus.draft
    market.leases[1].end_date = date(2026, 10, 31)
    db.session.commit()
    result = post(market, NOV)
    assert result.new_bills == 2
    assert bill_of(market.leases[0]) is None and bill_of(market.leases[1]) is None


def test_a_failed_posting_leaves_nothing_and_can_be_rerun_to_the_same_result(market, monkeypatch):
    for meter, kwh in zip(market.meters, (250, 100, 30, 0)):
        add_reading(meter, NOV, kwh)
    db.session.commit()
    run = billing.request_billing_run(market.market.id, NOV)
    db.session.commit()
    original = billing.q.mark_charges_billed

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(billing.q, "mark_charges_billed", crash)
    with pytest.raises(RuntimeError):
        billing.post_billing_run(run.id)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bill)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MeterReading).where(
        MeterReading.billed_dt.is_not(None))) == 0
    monkeypatch.setattr(billing.q, "mark_charges_billed", original)
    result = billing.post_billing_run(run.id)
    db.session.commit()
    assert result.new_bills == 4
    amounts = [b.amount_fen for b in db.session.scalars(sa.select(Bill).order_by(Bill.number))]
    assert amounts == [95500, 83800, 79040, 77000]
    assert [n for n in db.session.scalars(sa.select(Bill.number).order_by(Bill.number))][-1] == "JJ-202611-000004"


def test_posting_is_audited(market):
    post(market, NOV)
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "bills", AuditLog.action == "bulk"))
    assert "出账 2026-11：4 张账单" in entry.summary


def test_periods_too_far_ahead_are_refused(market):
    with pytest.raises(ValidationFailed):
        billing.request_billing_run(market.market.id, date(2099, 1, 1))


def test_overdue_clause(market):
    from tests.factories import make_bill

    today = date(2026, 11, 20)
    lease = market.leases[0]
    overdue = make_bill(lease, due_date=date(2026, 11, 19), number="OD1", kind=BillKind.adhoc)
    due_today = make_bill(lease, due_date=today, number="OD2", kind=BillKind.adhoc)
    paid = make_bill(lease, due_date=date(2026, 11, 1), status=BillStatus.paid, number="OD3", kind=BillKind.adhoc)
    partly = make_bill(lease, due_date=date(2026, 11, 1), status=BillStatus.partially_paid, number="OD4", kind=BillKind.adhoc)
    partly.paid_fen = 100
    void = make_bill(lease, due_date=date(2026, 11, 1), status=BillStatus.void, number="OD5", kind=BillKind.adhoc)
    db.session.commit()
    found = set(db.session.scalars(sa.select(Bill.number).where(billing.overdue_clause(today))))
    assert found == {"OD1", "OD4"}
    assert due_today.number not in found and paid.number not in found and void.number not in found


# --- the SQL and the reference arithmetic agree, on random data ---------------------------------------------


def test_sql_amounts_match_the_reference_arithmetic(market):
    import random

    rng = random.Random(7)
    period = NOV
    expected = {}
    for n in range(12):
        zone = market.zone_a if n % 2 else market.zone_b
        merchant = MerchantFactory(zone=zone, market=market.market)
        start = date(2026, rng.choice([1, 2, 5, 8, 11]), rng.choice([1, 7, 11, 30]))
        cycle = rng.choice([BillingCycle.monthly, BillingCycle.quarterly, BillingCycle.yearly])
        end = max(start, date(2026, 11, rng.choice([10, 30]))) if n % 3 == 0 else date(2027, 6, 30)
        lease = LeaseFactory(merchant=merchant, market=market.market, zone=zone, start_date=start, end_date=end,
                             billing_cycle=cycle)
        areas = [Decimal(rng.randrange(1000, 99999)) / 1000 for _ in range(rng.choice([1, 2]))]
        for i, area in enumerate(areas):
            lease.units.append(UnitFactory(zone=zone, market=market.market, code=f"R{n}-{i}", area_m2=area))
        fixed_rate = Decimal(rng.randrange(1, 10**7)) / 10000
        area_rate = Decimal(rng.randrange(1, 10**6)) / 10000
        for item, rate in ((market.fee_items["mgmt"], fixed_rate), (market.fee_items["rent"], area_rate),
                           (market.fee_items["power"], None)):
            db.session.add(LeaseFee(market=market.market, lease=lease, fee_item=item, effective_from=start, rate_fen=rate))
        meter = MeterFactory(unit=lease.units[0], market=market.market, zone=zone)
        kwh = Decimal(rng.randrange(0, 10**7)) / 10000
        add_reading(meter, period, kwh)
        months = cycle.months
        first_index = start.year * 12 + start.month
        if (period.year * 12 + period.month - first_index) % months == 0:
            w_start, w_end = billing.billing_window(period, months)
            s, e = max(start, w_start), min(lease.end_date, w_end)
            days, wdays = (e - s).days + 1, (w_end - w_start).days + 1
            expected[(lease.id, "fixed")] = billing.prorated_amount_fen(fixed_rate, Decimal(1), months, days, wdays)
            expected[(lease.id, "area")] = billing.prorated_amount_fen(area_rate, sum(areas), months, days, wdays)
        expected[(lease.id, "power")] = billing.tiered_amount_fen(kwh, [(0, 200, 68), (200, None, 98)])
    db.session.commit()
    post(market, period)
    got = {}
    for line in db.session.scalars(sa.select(BillLine).join(Bill).where(Bill.lease_id.in_({k[0] for k in expected}))):
        kind = "power" if line.meter_id else ("fixed" if line.unit_label == "月" else "area")
        got[(line.bill.lease_id, kind)] = line.amount_fen
    assert got == expected
