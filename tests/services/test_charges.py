"""One-off charges (费用录入): billed with the next run, or at once on an ad-hoc bill."""
from datetime import date

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill, BillLine
from app.models.enums import BillKind, BillStatus, ChargeStatus
from app.services.charges import add_charge, bill_charges_now, cancel_charge
from app.services.exceptions import Conflict, Forbidden, ValidationFailed
from tests.services.test_billing import NOV, bill_of, post


def test_charge_is_billed_with_the_next_run(market):
    charge = add_charge(market.merchants_a[0].id, 12000, "更换水龙头维修费")
    db.session.commit()
    assert charge.status == ChargeStatus.pending and charge.zone_id == market.zone_a.id
    post(market, NOV)
    bill = bill_of(market.leases[0])
    line = bill.lines[-1]
    assert (line.description, line.amount_fen, line.charge_id) == ("更换水龙头维修费", 12000, charge.id)
    assert bill.amount_fen == 5000 + 72000 + 12000
    db.session.refresh(charge)
    assert charge.status == ChargeStatus.billed and charge.bill_id == bill.id
    # Billed once: the next period does not bill it again.
    post(market, date(2026, 12, 1))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BillLine).where(BillLine.charge_id == charge.id)) == 1


def test_charge_of_a_lease_goes_on_that_leases_bill(market):
    merchant = market.merchants_b[0]
    charge = add_charge(merchant.id, 5000, "违规占道罚款", lease_id=market.leases[2].id)
    db.session.commit()
    post(market, NOV)
    assert charge.id in [line.charge_id for line in bill_of(market.leases[2]).lines]


def test_bill_now_issues_an_adhoc_bill_due_per_market_rule(market):
    charge = add_charge(market.merchants_b[1].id, 8800, "冷库维修费", bill_now=True, issue_date=date(2026, 11, 20))
    db.session.commit()
    bill = db.session.get(Bill, charge.bill_id)
    assert bill.kind == BillKind.adhoc and bill.status == BillStatus.issued
    assert bill.number == "JJ-202611-000001"
    assert bill.issue_date == date(2026, 11, 20) and bill.due_date == date(2026, 12, 5)
    assert bill.amount_fen == 8800 and [line.amount_fen for line in bill.lines] == [8800]
    assert bill.zone_id == market.zone_b.id and bill.merchant_id == market.merchants_b[1].id
    assert charge.status == ChargeStatus.billed
    # The run does not bill it a second time; its own numbers continue after the ad-hoc bill.
    post(market, NOV)
    assert 8800 not in [line.amount_fen for line in bill_of(market.leases[3]).lines]
    assert sorted(db.session.scalars(sa.select(Bill.number)))[-1] == "JJ-202611-000005"


def test_bill_now_on_selected_pending_charges_groups_per_merchant(market):
    a = add_charge(market.merchants_a[0].id, 1000, "门锁维修")
    b = add_charge(market.merchants_a[0].id, 2000, "电线更换")
    c = add_charge(market.merchants_a[1].id, 3000, "卫生罚款")
    db.session.commit()
    bills = bill_charges_now([a.id, b.id, c.id], issue_date=date(2026, 11, 23))
    db.session.commit()
    assert sorted(bill.amount_fen for bill in bills) == [3000, 3000]
    assert {len(bill.lines) for bill in bills} == {1, 2}
    with pytest.raises(Conflict):
        bill_charges_now([a.id])


def test_charge_validation(market):
    with pytest.raises(ValidationFailed):
        add_charge(market.merchants_a[0].id, 0, "零元")
    with pytest.raises(ValidationFailed):
        add_charge(market.merchants_a[0].id, 100, "  ")
    with pytest.raises(ValidationFailed):
        add_charge(market.merchants_a[0].id, 100, "别人的租约", lease_id=market.leases[2].id)


def test_manager_adds_charges_only_in_own_zones(market, staff):
    charge = add_charge(market.merchants_a[0].id, 500, "A区维修", user=staff["manager1"])
    assert charge.created_by_id == staff["manager1"].id
    with pytest.raises(Forbidden):
        add_charge(market.merchants_b[0].id, 500, "B区维修", user=staff["manager1"])


def test_cancel_charge_needs_a_reason(market):
    charge = add_charge(market.merchants_a[0].id, 500, "误录")
    db.session.commit()
    with pytest.raises(ValidationFailed):
        cancel_charge(charge.id, "")
    cancel_charge(charge.id, "重复录入")
    db.session.commit()
    assert charge.status == ChargeStatus.cancelled
    assert db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "charges", AuditLog.reason == "重复录入"))
    post(market, NOV)
    assert charge.id not in [line.charge_id for line in bill_of(market.leases[0]).lines]
