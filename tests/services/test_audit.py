"""Every change to a money-relevant row is in the append-only audit log."""
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Unit
from app.services.audit import AuditLogIsAppendOnly


def test_edit_through_the_back_office_is_audited(login_as, market):
    unit = market.units_a[0]
    client = login_as("manager1")
    form = {
        "market": str(market.market.id),
        "zone": str(market.zone_a.id),
        "code": unit.code,
        "floor": "2",
        "area_m2": "15.50",
        "category": "蔬菜",
        "status": "leased",
        "plan_x": "2", "plan_y": "2", "plan_w": "10", "plan_h": "3",
    }
    resp = client.post(f"/unitview/edit/{unit.id}", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert db.session.get(Unit, unit.id).area_m2 == pytest.approx(15.5)
    entry = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.table_name == "units", AuditLog.row_id == str(unit.id),
                                  AuditLog.action == "update")
    ).one()
    assert entry.username == "manager1"
    assert entry.before["area_m2"] == "12.0000" or entry.before["area_m2"].startswith("12")
    assert entry.after["area_m2"].startswith("15.5")
    assert entry.after["floor"] == "2"
    assert entry.request_id
    page = login_as("leader").get("/auditlogview/list/").get_data(as_text=True)
    assert "manager1" in page and "units" in page


def test_inserts_are_audited(market):
    row_ids = db.session.scalars(
        sa.select(AuditLog.row_id).where(AuditLog.table_name == "units", AuditLog.action == "insert")
    ).all()
    assert sorted(row_ids) == sorted(str(u.id) for u in market.units_a + market.units_b)


def test_audit_entries_cannot_be_changed(market):
    entry = db.session.scalars(sa.select(AuditLog)).first()
    entry.summary = "tampered"
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    entry = db.session.scalars(sa.select(AuditLog)).first()
    db.session.delete(entry)
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()


def test_manager_cannot_see_audit_log(login_as, market):
    resp = login_as("manager1").get("/auditlogview/list/")
    assert resp.status_code in (302, 403)
