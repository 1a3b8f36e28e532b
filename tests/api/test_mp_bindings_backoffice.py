"""Back office: bindings list and revoke (zone-scoped, Manager/Admin), printable stall QR codes."""
from __future__ import annotations

import base64
import re
from html import unescape

import sqlalchemy as sa

from app.extensions import db
from app.models import MerchantBinding
from tests.api.helpers import assert_error


def _binding_id(merchant):
    return db.session.execute(
        sa.select(MerchantBinding.id).where(MerchantBinding.merchant_id == merchant.id)).scalar_one()


def test_manager_sees_only_bindings_of_their_zone(mp_client, market, login_as):
    mp_client.bound(market.merchants_a[0])
    mp_client.bound(market.merchants_b[0])
    page = login_as("manager1").get("/bindings/list/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "张记蔬菜" in text and "王记水产" not in text
    admin_text = login_as("admin").get("/bindings/list/").get_data(as_text=True)
    assert "张记蔬菜" in admin_text and "王记水产" in admin_text
    export = login_as("manager1").get("/bindings/export/")
    assert export.status_code == 200 and export.data[:2] == b"PK"
    from openpyxl import load_workbook
    import io

    cells = [c.value for row in load_workbook(io.BytesIO(export.data)).active.iter_rows() for c in row]
    assert "张记蔬菜" in cells and "王记水产" not in cells


def test_revoke_takes_effect_on_the_next_request(mp_client, market, login_as):
    owner = mp_client.bound(market.merchants_a[0])
    assert owner.get("me").status_code == 200
    manager = login_as("manager1")
    resp = manager.post(f"/bindings/revoke/{_binding_id(market.merchants_a[0])}")
    assert resp.status_code == 302
    db.session.expire_all()
    binding = db.session.get(MerchantBinding, _binding_id(market.merchants_a[0]))
    assert binding.revoked_dt is not None and binding.revoked_by.username == "manager1"
    assert_error(owner.get("me"), 403, "not_bound")


def test_manager_cannot_revoke_another_zones_binding(mp_client, market, login_as):
    other = mp_client.bound(market.merchants_b[0])
    resp = login_as("manager1").post(f"/bindings/revoke/{_binding_id(market.merchants_b[0])}")
    assert resp.status_code == 404
    assert other.get("me").status_code == 200


def test_other_roles_cannot_revoke(mp_client, market, login_as):
    mp_client.bound(market.merchants_a[0])
    for username in ("clerk", "finance", "repairer1"):
        resp = login_as(username).post(f"/bindings/revoke/{_binding_id(market.merchants_a[0])}")
        assert resp.status_code in (302, 403), username
    db.session.expire_all()
    assert db.session.get(MerchantBinding, _binding_id(market.merchants_a[0])).revoked_dt is None


def _qr_url(html):
    match = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert match
    png = base64.b64decode(match.group(1))
    assert png.startswith(b"\x89PNG")
    return png


def test_unit_qr_page_binds_the_tenant_as_assistant(app, mp_client, market, login_as):
    manager = login_as("manager1")
    unit = market.units_a[1]
    page = manager.get(f"/stall-qr/unit/{unit.id}")
    assert page.status_code == 200
    html = unescape(page.get_data(as_text=True))
    assert unit.code in html and "李氏鲜蔬" in html
    _qr_url(html)
    token = re.search(r"/mp/bind\?t=([A-Za-z0-9_.\-]+)", html)
    assert token, "the page shows the bind URL encoded in the QR code"
    client = mp_client.logged_in()
    assert client.post("auth/bind", json={"bind_token": token.group(1)}).status_code == 200
    assert client.get("me").get_json()["merchant"]["name"] == "李氏鲜蔬"


def test_qr_pages_are_zone_scoped(market, login_as):
    manager = login_as("manager1")
    assert manager.get(f"/stall-qr/unit/{market.units_b[0].id}").status_code == 404
    assert manager.get(f"/stall-qr/zone/{market.zone_b.id}").status_code == 404
    sheet = manager.get(f"/stall-qr/zone/{market.zone_a.id}")
    assert sheet.status_code == 200
    html = sheet.get_data(as_text=True)
    assert html.count("data:image/png;base64,") == 2 and "A-001" in html and "A-002" in html
    index = manager.get("/stall-qr/").get_data(as_text=True)
    assert "A-001" in index and "B-001" not in index
    assert login_as("clerk").get(f"/stall-qr/unit/{market.units_a[0].id}").status_code in (302, 403)


def test_revoke_checks_the_csrf_token_when_csrf_is_on(app, mp_client, market, login_as):
    mp_client.bound(market.merchants_a[0])
    manager = login_as("manager1")
    binding_id = _binding_id(market.merchants_a[0])
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert manager.post(f"/bindings/revoke/{binding_id}").status_code == 400
        page = manager.get("/bindings/list/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        resp = manager.post(f"/bindings/revoke/{binding_id}", data={"csrf_token": token})
        assert resp.status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    db.session.expire_all()
    assert db.session.get(MerchantBinding, binding_id).revoked_dt is not None
