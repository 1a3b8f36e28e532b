"""Corrections: adjustment bills (also for a corrected meter reading) and voids."""
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Bill, Charge
from app.models.enums import BillKind, BillStatus, ChargeStatus
from app.models.readings import MeterReading
from app.services import billing
from app.services.billing_corrections import AdjustmentLine, adjust_for_reading, create_adjustment_bill, void_bill
from app.services.exceptions import Conflict, NotFound, ValidationFailed
from tests.factories import add_reading
from tests.services.test_billing import NOV, bill_of, post


def test_adjustment_bill_corrects_a_posted_bill_without_changing_it(market):
    post(market, NOV, issue_date=date(2026, 12, 1))
    original = bill_of(market.leases[0])
    before = (original.amount_fen, original.status, [line.amount_fen for line in original.lines])
    adjustment = create_adjustment_bill(
        original.id,
        [AdjustmentLine("补收 11 月垃圾清运费", 1000), AdjustmentLine("租金优惠（开业）", -300)],
        reason="与商户核对后调整", issue_date=date(2026, 12, 5),
    )
    db.session.commit()
    db.session.expire_all()
    original = db.session.get(Bill, original.id)
    assert (original.amount_fen, original.status, [line.amount_fen for line in original.lines]) == before
    assert adjustment.kind == BillKind.adjustment
    assert adjustment.adjusts_bill_id == original.id
    assert adjustment.amount_fen == 700
    assert [line.amount_fen for line in adjustment.lines] == [1000, -300]
    assert adjustment.number == "JJ-202611-000005"
    assert adjustment.period == NOV and adjustment.due_date == date(2026, 12, 20)
    entry = db.session.scalar(
        sa.select(AuditLog).where(AuditLog.table_name == "bills", AuditLog.row_id == str(original.id),
                                  AuditLog.reason == "与商户核对后调整")
    )
    assert entry.after == {"adjusted_by": "JJ-202611-000005", "adjustment_fen": 700}


def test_adjustment_needs_a_reason_and_lines(market):
    post(market, NOV)
    bill = bill_of(market.leases[0])
    with pytest.raises(ValidationFailed):
        create_adjustment_bill(bill.id, [AdjustmentLine("x", 100)], reason=" ")
    with pytest.raises(ValidationFailed):
        create_adjustment_bill(bill.id, [], reason="理由")
    with pytest.raises(ValidationFailed):
        create_adjustment_bill(bill.id, [AdjustmentLine("x", 0)], reason="理由")


def test_corrected_reading_after_billing_is_an_adjustment_bill(market):
    """Billed 250 kWh (18,500 fen); corrected to 230 kWh = 200*68 + 30*98 = 16,540: adjustment -1,960."""
    reading = add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    post(market, NOV)
    original = bill_of(market.leases[0])
    reading = db.session.get(MeterReading, reading.id)
    reading.reading = Decimal(1230)
    reading.consumption = Decimal(230)
    db.session.commit()
    adjustment = adjust_for_reading(reading.id, "抄表员看错读数", issue_date=date(2026, 12, 1))
    db.session.commit()
    assert adjustment.adjusts_bill_id == original.id
    assert [line.amount_fen for line in adjustment.lines] == [-18500, 16540]
    assert adjustment.amount_fen == -1960
    assert [line.quantity for line in adjustment.lines] == [Decimal(-250), Decimal(230)]
    assert "上次 1000 本次 1230 用量 230kWh" in adjustment.lines[1].description
    db.session.refresh(reading)
    assert reading.bill_id == adjustment.id
    with pytest.raises(Conflict):
        adjust_for_reading(reading.id, "再来一次")


def test_late_reading_of_a_billed_period_is_billed_as_an_adjustment(market):
    post(market, NOV)
    late = add_reading(market.meters[1], NOV, 100)
    db.session.commit()
    adjustment = adjust_for_reading(late.id, "补录读数")
    db.session.commit()
    assert adjustment.adjusts_bill_id == bill_of(market.leases[1]).id
    assert [line.amount_fen for line in adjustment.lines] == [6800]


def test_void_needs_a_reason_and_is_audited(market):
    reading = add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    post(market, NOV)
    bill = bill_of(market.leases[0])
    with pytest.raises(ValidationFailed):
        void_bill(bill.id, "")
    void_bill(bill.id, "租约录错，重新出账")
    db.session.commit()
    db.session.expire_all()
    bill = db.session.get(Bill, bill.id)
    assert bill.status == BillStatus.void
    assert bill.void_reason == "租约录错，重新出账" and bill.voided_dt is not None
    entries = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.table_name == "bills", AuditLog.row_id == str(bill.id),
                                  AuditLog.reason == "租约录错，重新出账")
    ).all()
    assert any(e.before.get("status") == "issued" and e.after.get("status") == "void" for e in entries)
    # The reading is free again, and re-running the period bills the lease anew.
    assert db.session.get(MeterReading, reading.id).bill_id is None
    result = post(market, NOV)
    assert result.new_bills == 1
    rebilled = bill_of(market.leases[0])
    assert rebilled.id != bill.id and rebilled.amount_fen == 95500
    assert db.session.get(MeterReading, reading.id).bill_id == rebilled.id
    with pytest.raises(Conflict):
        void_bill(bill.id, "再次作废")


def test_paid_or_partially_paid_bill_cannot_be_voided(market):
    post(market, NOV)
    paid = bill_of(market.leases[0])
    paid.status, paid.paid_fen = BillStatus.paid, paid.amount_fen
    partly = bill_of(market.leases[1])
    partly.status, partly.paid_fen = BillStatus.partially_paid, 100
    db.session.commit()
    for bill in (paid, partly):
        with pytest.raises(Conflict, match="请先退款"):
            void_bill(bill.id, "想作废")
    db.session.rollback()
    assert db.session.get(Bill, paid.id).status == BillStatus.paid


def test_voiding_returns_the_bills_charges_to_pending(market):
    charge = Charge(market=market.market, merchant=market.merchants_a[0], zone=market.zone_a,
                    description="维修费", amount_fen=1500)
    db.session.add(charge)
    db.session.commit()
    post(market, NOV)
    bill = bill_of(market.leases[0])
    void_bill(bill.id, "错账")
    db.session.commit()
    db.session.refresh(charge)
    assert charge.status == ChargeStatus.pending and charge.bill_id is None


def test_manager_cannot_correct_another_zones_bill(market, staff):
    post(market, NOV)
    other = bill_of(market.leases[2])
    with pytest.raises(NotFound):
        void_bill(other.id, "越权", user=staff["manager1"])
