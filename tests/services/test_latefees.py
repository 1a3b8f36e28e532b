"""Late fees (滞纳金): the worked examples of docs/late-fees.md, number for number."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill
from app.models.enums import BillStatus
from app.models.latefees import LateFeeAccrual, LateFeeRun, LateFeeWaiver
from app.services.exceptions import Conflict, ValidationFailed
from app.services.latefees import (
    accrue_late_fees,
    applicable_rule,
    create_rule,
    parse_rate,
    preview_late_fees,
    waive_late_fee,
)
from app.services.payments import record_payment
from app.utils.dates import MARKET_TZ
from tests.factories import MarketFactory, make_bill

DUE = date(2026, 11, 15)


def accrue(market_id, day):
    return accrue_late_fees(market_id, day, allow_future=True)


def fee(bill):
    db.session.expire_all()
    return db.session.get(Bill, bill.id).late_fee_fen


def rows(bill):
    return {
        a.accrual_date: a.amount_fen
        for a in db.session.scalars(sa.select(LateFeeAccrual).where(LateFeeAccrual.bill_id == bill.id))
    }


def shanghai(y, m, d, hh=10, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=MARKET_TZ).astimezone(timezone.utc)


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    """The examples run in Nov 2026 - Jun 2027: let offline payments be dated then."""
    from app.services import payments

    monkeypatch.setattr(payments, "now_utc", lambda: datetime(2027, 7, 1, tzinfo=timezone.utc))


@pytest.fixture
def jj(market):
    """The small market with the example rule: 万分之五 a day, 5 grace days, cap 10% of principal."""
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_percent=Decimal(10))
    db.session.commit()
    return market


def test_grace_then_fee_counts_from_the_day_after_the_due_date(jj):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 20))
    assert fee(bill) == 0  # 11-16 .. 11-20: grace period, nothing charged
    assert rows(bill) == {date(2026, 11, d): 0 for d in range(16, 21)}
    accrue(jj.market.id, date(2026, 11, 21))
    assert fee(bill) == 300  # 6 days (11-16 .. 11-21) x 50 fen, charged on the first day after grace
    accrue(jj.market.id, date(2026, 11, 25))
    assert fee(bill) == 500  # ¥5.00 on 2026-11-25: 10 days x 100,000 x 0.0005
    assert rows(bill)[date(2026, 11, 22)] == 50


def test_bill_settled_within_grace_pays_no_fee(jj):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 19))
    record_payment(jj.market.id, bill.merchant_id, [bill.id], 100000, "cash", "CASH-20261120-0001",
                   shanghai(2026, 11, 20))
    accrue(jj.market.id, date(2026, 11, 30))
    assert fee(bill) == 0
    assert db.session.get(Bill, bill.id).status == BillStatus.paid


def test_cumulative_rounding_never_drifts(jj):
    # 123,457 fen x 0.0005 = 61.7285 fen a day: rounded per day it would be 62 every day.
    bill = make_bill(jj.leases[0], amount_fen=123457, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 25))
    got = rows(bill)
    assert [got[date(2026, 11, d)] for d in range(21, 26)] == [370, 62, 62, 62, 61]
    assert fee(bill) == 617  # round_half_up(123,457 x 0.0005 x 10) = round(617.285)


def test_cap_percent_reached_on_day_200(jj):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2027, 6, 2))
    assert fee(bill) == 9950
    accrue(jj.market.id, date(2027, 6, 3))  # 2026-11-15 + 200 days
    assert fee(bill) == 10000
    accrue(jj.market.id, date(2027, 6, 10))
    assert fee(bill) == 10000
    assert rows(bill)[date(2027, 6, 4)] == 0


def test_amount_cap_and_percent_cap_the_lower_wins(market):
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_fen=2000, cap_percent=Decimal(10))
    bill = make_bill(market.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(market.market.id, date(2026, 12, 24))
    assert fee(bill) == 1950
    accrue(market.market.id, date(2026, 12, 25))  # 40 days x 50 fen
    assert fee(bill) == 2000
    accrue(market.market.id, date(2027, 1, 31))
    assert fee(bill) == 2000


def test_percent_cap_is_rounded_half_up(market):
    create_rule(market.market.id, date(2026, 1, 1), "0.01", grace_days=0, cap_percent=Decimal("2.5"))
    bill = make_bill(market.leases[0], amount_fen=1002, due_date=DUE)  # 2.5% = 25.05 fen -> 25
    bill2 = make_bill(market.leases[0], amount_fen=1018, due_date=DUE, period=date(2026, 9, 1))  # 25.45 -> 25
    bill3 = make_bill(market.leases[0], amount_fen=1020, due_date=DUE, period=date(2026, 8, 1))  # 25.5 -> 26
    db.session.commit()
    accrue(market.market.id, date(2027, 1, 31))
    assert (fee(bill), fee(bill2), fee(bill3)) == (25, 25, 26)


def test_partial_payment_and_rule_change_timeline(jj):
    """docs/late-fees.md, example 5: the whole life of one bill."""
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 28))
    assert fee(bill) == 650  # 13 days x 50
    record_payment(jj.market.id, bill.merchant_id, [bill.id], 60000, "bank_transfer", "BANK-0001",
                   shanghai(2026, 11, 28, 10))
    db.session.commit()
    assert db.session.get(Bill, bill.id).principal_outstanding_fen == 40000
    accrue(jj.market.id, date(2026, 11, 30))
    assert fee(bill) == 690  # 11-29, 11-30: 40,000 x 0.0005 = 20 a day
    v1_rows = {a.accrual_date: (a.amount_fen, a.rule_id) for a in
               db.session.scalars(sa.select(LateFeeAccrual).where(LateFeeAccrual.bill_id == bill.id))}
    v2 = create_rule(jj.market.id, date(2026, 12, 1), "万分之三", grace_days=5, cap_percent=Decimal(10))
    db.session.commit()
    accrue(jj.market.id, date(2026, 12, 10))
    assert fee(bill) == 810  # 12-01 .. 12-10: 10 days x 40,000 x 0.0003 = 12 a day
    after = {a.accrual_date: (a.amount_fen, a.rule_id) for a in
             db.session.scalars(sa.select(LateFeeAccrual).where(LateFeeAccrual.bill_id == bill.id))}
    assert {d: v for d, v in after.items() if d in v1_rows} == v1_rows  # the past is untouched
    assert after[date(2026, 12, 1)] == (12, v2.id)
    assert after[date(2026, 11, 29)][0] == 20


def test_payment_day_is_charged_on_the_old_principal_even_in_catch_up(jj):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 27))
    record_payment(jj.market.id, bill.merchant_id, [bill.id], 60000, "bank_transfer", "BANK-0002",
                   shanghai(2026, 11, 28, 10))
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 30))  # catches up 11-28 .. 11-30
    assert fee(bill) == 690


def test_rule_cannot_start_in_accrued_days(jj):
    make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 20))
    with pytest.raises(Conflict):
        create_rule(jj.market.id, date(2026, 11, 20), "0.0003", grace_days=5)
    rule = create_rule(jj.market.id, date(2026, 11, 21), "0.0003", grace_days=5)
    assert rule.id


def test_rule_validation(market):
    with pytest.raises(ValidationFailed):
        create_rule(market.market.id, date(2026, 1, 1), "0.02")
    with pytest.raises(ValidationFailed):
        create_rule(market.market.id, date(2026, 1, 1), "0.0005", cap_percent=Decimal(120))
    with pytest.raises(ValidationFailed):
        create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=-1)
    with pytest.raises(ValidationFailed):
        create_rule(market.market.id, date(2026, 1, 1), "0.00000001")
    create_rule(market.market.id, date(2026, 1, 1), "0.0005")
    with pytest.raises(Conflict):
        create_rule(market.market.id, date(2026, 1, 1), "0.0003")


def test_parse_rate():
    assert parse_rate("0.0005") == Decimal("0.0005")
    assert parse_rate("万分之五") == Decimal("0.0005")
    assert parse_rate("千分之一") == Decimal("0.001")
    assert parse_rate("0.05%") == Decimal("0.0005")


def test_per_lease_override_wins(jj):
    special = jj.leases[1]
    override = create_rule(jj.market.id, date(2026, 6, 1), "0.001", grace_days=0, lease_id=special.id)
    exempt = jj.leases[2]
    create_rule(jj.market.id, date(2026, 6, 1), "0", lease_id=exempt.id, is_active=False)
    normal_bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    special_bill = make_bill(special, amount_fen=100000, due_date=DUE)
    exempt_bill = make_bill(exempt, amount_fen=100000, due_date=DUE)
    db.session.commit()
    assert applicable_rule(jj.market.id, special.id, date(2026, 11, 16)).id == override.id
    accrue(jj.market.id, date(2026, 11, 16))
    assert fee(special_bill) == 100  # no grace, 100,000 x 0.001
    assert fee(normal_bill) == 0  # market rule: still in grace
    accrue(jj.market.id, date(2026, 11, 25))
    assert fee(special_bill) == 1000
    assert fee(normal_bill) == 500
    assert fee(exempt_bill) == 0 and rows(exempt_bill) == {}


def test_rerunning_a_day_or_an_earlier_day_changes_nothing(jj):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    first = accrue(jj.market.id, date(2026, 11, 25))
    db.session.commit()
    assert first.amount_fen == 500 and not first.already_accrued
    count = db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id)))
    again = accrue(jj.market.id, date(2026, 11, 25))
    earlier = accrue(jj.market.id, date(2026, 11, 22))
    db.session.commit()
    assert again.already_accrued and earlier.already_accrued
    assert db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id))) == count
    assert fee(bill) == 500


def test_catch_up_equals_day_by_day(app):
    """Two identical markets: one accrued every day, one in a single catch-up run."""
    results = []
    for code, daily in (("DAY", True), ("CATCH", False)):
        mk = MarketFactory(code=code)
        create_rule(mk.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_fen=1500)
        from tests.factories import LeaseFactory, MerchantFactory, ZoneFactory
        zone = ZoneFactory(market=mk)
        lease = LeaseFactory(merchant=MerchantFactory(market=mk, zone=zone), market=mk, zone=zone)
        b1 = make_bill(lease, amount_fen=123457, due_date=DUE)
        b2 = make_bill(lease, amount_fen=88888, due_date=date(2026, 11, 20), period=date(2026, 9, 1))
        db.session.commit()
        day = date(2026, 11, 16)
        while day <= date(2026, 12, 31):
            if daily:
                accrue(mk.id, day)
            if day == date(2026, 11, 30):
                if not daily:
                    accrue(mk.id, date(2026, 11, 25))  # a partial catch-up before the payment
                record_payment(mk.id, lease.merchant_id, [b1.id], 50000, "cash", f"CASH-{code}-1",
                               shanghai(2026, 11, 30, 9))
                db.session.commit()
            day += timedelta(days=1)
        if not daily:
            accrue(mk.id, date(2026, 12, 31))
        db.session.commit()
        results.append([(sorted((d.isoformat(), a) for d, a in rows(b).items()), fee(b)) for b in (b1, b2)])
    assert results[0] == results[1]
    assert results[0][1][1] == 1500  # the second bill reached the amount cap


def test_waiver_is_audited_and_accrual_continues_with_cap_on_accruals(market, staff):
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_fen=600)
    bill = make_bill(market.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(market.market.id, date(2026, 11, 25))
    assert fee(bill) == 500
    waiver = waive_late_fee(bill.id, 200, "商户受疫情影响，经领导批准减免", user=staff["finance"])
    db.session.commit()
    assert fee(bill) == 300
    entries = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.table_name == "bills", AuditLog.row_id == str(bill.id),
                                  AuditLog.reason.like("%减免%"))
    ).all()
    assert entries and entries[-1].after["late_fee_fen"] == 300
    assert db.session.get(LateFeeWaiver, waiver.id).created_by_id == staff["finance"].id
    accrue(market.market.id, date(2026, 11, 26))
    assert fee(bill) == 350  # 550 accrued - 200 waived
    accrue(market.market.id, date(2026, 12, 31))
    assert fee(bill) == 400  # the cap (600) counts accruals, not net of the waiver


def test_waiver_limits_and_settling_waiver(jj, staff):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 25))
    with pytest.raises(ValidationFailed):
        waive_late_fee(bill.id, 501, "太多", user=staff["finance"])
    with pytest.raises(ValidationFailed):
        waive_late_fee(bill.id, 100, "  ", user=staff["finance"])
    record_payment(jj.market.id, bill.merchant_id, [bill.id], 100200, "cash", "CASH-X-1", shanghai(2026, 11, 25, 11))
    db.session.commit()
    with pytest.raises(ValidationFailed):
        waive_late_fee(bill.id, 301, "只剩 300 未付", user=staff["finance"])
    waive_late_fee(bill.id, 300, "尾款减免", user=staff["finance"])
    db.session.commit()
    settled = db.session.get(Bill, bill.id)
    assert settled.status == BillStatus.paid and settled.late_fee_fen == 200 and settled.receipt_no


def test_preview_writes_nothing_and_matches_the_run(jj):
    bill = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE)
    make_bill(jj.leases[2], amount_fen=40000, due_date=DUE)
    db.session.commit()
    preview = preview_late_fees(jj.market.id, date(2026, 11, 25))
    db.session.commit()
    assert preview.amount_fen == 700 and preview.bill_count == 2
    assert [(line.bill_number, line.amount_fen) for line in preview.lines][0] == (bill.number, 500)
    assert db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(LateFeeRun.id))) == 0
    assert fee(bill) == 0
    scoped = preview_late_fees(jj.market.id, date(2026, 11, 25), zone_ids={jj.zone_b.id})
    assert scoped.amount_fen == 200 and scoped.bill_count == 1
    result = accrue(jj.market.id, date(2026, 11, 25))
    assert result.amount_fen == 700


def test_future_days_are_refused(jj):
    with pytest.raises(ValidationFailed):
        accrue_late_fees(jj.market.id, date(2099, 1, 1))


def test_void_and_paid_bills_do_not_accrue(jj):
    void = make_bill(jj.leases[0], amount_fen=100000, due_date=DUE, status=BillStatus.void)
    paid = make_bill(jj.leases[1], amount_fen=100000, due_date=DUE, status=BillStatus.paid, paid_fen=100000)
    db.session.commit()
    accrue(jj.market.id, date(2026, 11, 25))
    assert rows(void) == {} and rows(paid) == {}
