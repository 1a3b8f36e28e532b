"""GET/PATCH /me."""
from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Merchant
from tests.api.helpers import assert_error


def test_me_shows_profile_units_and_notification_settings(mp_client, market):
    merchant = market.merchants_a[0]
    owner = mp_client.bound(merchant)
    resp = owner.get("me")
    assert resp.status_code == 200
    me = resp.get_json()
    assert me["role"] == "owner"
    assert me["merchant"]["name"] == "张记蔬菜" and me["merchant"]["phone"] == merchant.phone
    assert me["merchant"]["zone"]["code"] == "A"
    assert me["merchant"]["notify_bill"] is True
    assert [(u["code"], u["zone"]["code"], u["area_m2"]) for u in me["units"]] == [("A-001", "A", "12.0000")]
    assert [m["merchant_id"] for m in me["merchants"]] == [merchant.id]


def test_owner_changes_contact_and_notification_settings(mp_client, market):
    merchant = market.merchants_a[0]
    owner = mp_client.bound(merchant)
    resp = owner.patch("me", json={"contact_name": " 张小伟 ", "phone2": "0871-6543210", "notify_sms": False})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["merchant"]["contact_name"] == "张小伟"
    db.session.expire_all()
    row = db.session.get(Merchant, merchant.id)
    assert (row.contact_name, row.phone2, row.notify_sms, row.notify_bill) == ("张小伟", "0871-6543210", False, True)
    assert db.session.execute(
        sa.select(sa.func.count(AuditLog.id)).where(AuditLog.table_name == "merchants")
    ).scalar_one() >= 1
    assert owner.patch("me", json={"phone2": None}).status_code == 200
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).phone2 is None


def test_name_phone_and_credit_code_cannot_be_changed(mp_client, market):
    merchant = market.merchants_a[0]
    owner = mp_client.bound(merchant)
    for body in ({"name": "别人家"}, {"credit_code": "91530100MA6K000000"}, {"phone": "13900000000"},
                 {"contact_name": ""}, {"contact_name": "x" * 51}, {"phone2": "abc"}, {"notify_sms": "maybe"},
                 {"contact_name": "张\x00伟"}, {"contact_name": "张\x07伟"}):
        err = assert_error(owner.patch("me", json=body), 422, "validation_failed")
        assert err["message"]
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).name == "张记蔬菜"


def test_notification_settings_take_only_json_booleans(mp_client, market):
    merchant = market.merchants_a[0]
    owner = mp_client.bound(merchant)
    for value in (0, 1, "off", "yes", "false", None):
        err = assert_error(owner.patch("me", json={"notify_sms": value, "notify_bill": value}), 422,
                           "validation_failed")
        assert "notify_sms" in err["details"]["fields"], (value, err)
    db.session.expire_all()
    row = db.session.get(Merchant, merchant.id)
    assert (row.notify_sms, row.notify_bill) == (True, True)
    assert owner.patch("me", json={"notify_sms": False}).status_code == 200
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).notify_sms is False


def test_assistants_cannot_change_the_profile(mp_client, market):
    assistant = mp_client.assistant(market.units_a[0])
    assert assistant.get("me").status_code == 200
    assert_error(assistant.patch("me", json={"notify_sms": False}), 403, "owner_required")


def test_me_names_the_subscribe_templates_the_mini_program_must_request(app, mp_client, market, monkeypatch):
    owner = mp_client.bound(market.merchants_a[0])
    monkeypatch.setitem(app.config, "WECHAT_TEMPLATE_TICKET_PROGRESS", "TPL-ticket-1")
    assert owner.get("me").get_json()["subscribe_templates"] == {"ticket_progress": "TPL-ticket-1"}
    monkeypatch.setitem(app.config, "WECHAT_TEMPLATE_TICKET_PROGRESS", "")
    assert owner.get("me").get_json()["subscribe_templates"] == {}
