"""The demo market is believable and built once."""
import sqlalchemy as sa

from app.extensions import db
from app.models import Lease, Market, Merchant, Meter, Unit, Zone
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
