"""A manager sees only the zones assigned to them, everywhere."""
import io

import openpyxl


def test_manager_lists_only_own_zone_units(login_as, market):
    page = login_as("manager1").get("/unitview/list/").get_data(as_text=True)
    assert "A-001" in page and "A-002" in page
    assert "B-001" not in page and "B-002" not in page


def test_leader_lists_every_unit(login_as, market):
    page = login_as("leader").get("/unitview/list/").get_data(as_text=True)
    for code in ("A-001", "A-002", "B-001", "B-002"):
        assert code in page


def test_manager_cannot_open_other_zone_unit(login_as, market):
    client = login_as("manager1")
    other = market.units_b[0]
    assert client.get(f"/unitview/show/{other.id}").status_code == 404
    assert client.get(f"/unitview/edit/{other.id}").status_code == 404
    own = market.units_a[0]
    assert client.get(f"/unitview/show/{own.id}").status_code == 200


def test_manager_cannot_see_other_zone_merchants_or_leases(login_as, market):
    client = login_as("manager1")
    merchants = client.get("/merchantview/list/").get_data(as_text=True)
    assert "张记蔬菜" in merchants and "王记水产" not in merchants
    leases = client.get("/leaseview/list/").get_data(as_text=True)
    assert market.leases[0].code in leases and market.leases[2].code not in leases


def test_manager_export_contains_only_own_zone(login_as, market):
    resp = login_as("manager1").get("/unitview/export/")
    assert resp.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(resp.data))
    codes = {row[0] for row in book.active.iter_rows(min_row=2, values_only=True)}
    assert codes == {"A-001", "A-002"}


def test_search_does_not_escape_scope(login_as, market):
    other = market.units_b[0]
    page = login_as("manager1").get("/unitview/list/?_flt_0_code=B-001").get_data(as_text=True)
    assert f"/unitview/show/{other.id}" not in page
    page = login_as("leader").get("/unitview/list/?_flt_0_code=B-001").get_data(as_text=True)
    assert f"/unitview/show/{other.id}" in page


def test_rest_api_is_scoped(login_as, market):
    client = login_as("manager1")
    data = client.get("/api/v1/units/").get_json()
    assert sorted(item["code"] for item in data["result"]) == ["A-001", "A-002"]
    assert data["count"] == 2
    assert client.get(f"/api/v1/units/{market.units_b[0].id}").status_code == 404
    assert client.get(f"/api/v1/units/{market.units_a[0].id}").status_code == 200
    leader = login_as("leader").get("/api/v1/units/").get_json()
    assert leader["count"] == 4


def test_repairer_cannot_list_units(login_as, market):
    resp = login_as("repairer1").get("/unitview/list/")
    assert resp.status_code in (302, 403)
    assert login_as("repairer1").get("/api/v1/units/").status_code in (401, 403)


def test_manager_cannot_edit_other_zone_through_api(login_as, market):
    client = login_as("manager1")
    other = market.units_b[0]
    resp = client.put(f"/api/v1/units/{other.id}", json={"category": "被篡改"})
    assert resp.status_code in (403, 404, 405)


def test_manager_cannot_create_in_other_zone_through_api(login_as, market, db):
    from app.models import Unit

    client = login_as("manager1")
    resp = client.post("/api/v1/units/", json={
        "code": "X-1", "zone": market.zone_b.id, "market": market.market.id,
        "area_m2": "10", "floor": "1", "status": "vacant",
    })
    assert resp.status_code == 403
    db.session.expire_all()
    assert db.session.query(Unit).filter_by(code="X-1").count() == 0
    ok = client.post("/api/v1/units/", json={
        "code": "X-2", "zone": market.zone_a.id, "market": market.market.id,
        "area_m2": "10", "floor": "1", "status": "vacant",
    })
    assert ok.status_code == 201


def test_manager_cannot_move_own_unit_into_other_zone(login_as, market, db):
    from app.models import Unit

    unit = market.units_a[0]
    resp = login_as("manager1").put(f"/api/v1/units/{unit.id}", json={"zone": market.zone_b.id})
    assert resp.status_code == 403
    db.session.expire_all()
    assert db.session.get(Unit, unit.id).zone_id == market.zone_a.id


def test_manager_form_post_to_other_zone_is_refused(login_as, market, db):
    from app.models import Merchant

    client = login_as("manager1")
    resp = client.post("/merchantview/add", data={
        "market": str(market.market.id), "code": "MX1", "name": "越权商户", "zone": str(market.zone_b.id),
    })
    db.session.expire_all()
    assert db.session.query(Merchant).filter_by(code="MX1").count() == 0
    assert resp.status_code in (200, 403)
