"""Login, tokens, binding (phone / stall QR), merchant selection and logout, against the fake WeChat."""
from __future__ import annotations

import hashlib
import logging
import socket
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, MerchantBinding, WeChatUser
from app.models.enums import LeaseStatus
from app.services import mp_auth
from app.services.bind_tokens import make_bind_token
from app.utils.dates import now_utc
from tests.api.helpers import MpClient, assert_error


def test_login_creates_user_and_returns_an_opaque_token_stored_only_as_its_hash(mp_client, fake_wechat, market):
    openid = f"o-{uuid.uuid4().hex[:12]}"
    client = MpClient(mp_client.app)
    resp = client.post("auth/login", json={"code": mp_client.login_code(openid)})
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == {"token", "expires_at", "is_bound", "merchants"}
    assert body["is_bound"] is False and body["merchants"] == []
    token = body["token"]
    assert len(token) >= 43
    db.session.expire_all()
    user = db.session.execute(sa.select(WeChatUser).where(WeChatUser.openid == openid)).scalar_one()
    rows = db.session.execute(sa.select(ApiToken).where(ApiToken.wechat_user_id == user.id)).scalars().all()
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0].expires_dt > now_utc() + timedelta(days=29)
    # the token itself is nowhere in the database row; session_key never leaves the server
    assert token not in repr(vars(rows[0]))
    assert "session_key" not in resp.get_data(as_text=True)


def test_login_again_answers_the_merchants_bound(mp_client, market):
    owner = mp_client.bound(market.merchants_a[0])
    again = mp_client.logged_in(owner.openid)
    answer = again.login_answer
    assert answer["is_bound"] is True
    assert [m["merchant_id"] for m in answer["merchants"]] == [market.merchants_a[0].id]
    assert answer["merchants"][0]["role"] == "owner"
    assert answer["merchants"][0]["bound_via"] == "phone"
    assert again.token != owner.token
    assert owner.get("me").status_code == 200 and again.get("me").status_code == 200


@pytest.mark.parametrize("code, status, error_code", [
    ("no-such-code", 401, "invalid_code"),
    ("ratelimit-1", 429, "wechat_rate_limited"),
    ("risky-1", 403, "wechat_risky_user"),
])
def test_login_maps_wechat_errors(mp_client, code, status, error_code):
    err = assert_error(mp_client.anonymous().post("auth/login", json={"code": code}), status, error_code)
    assert err["message"]


def test_login_with_a_used_code_is_401(mp_client):
    code = mp_client.login_code("o-used")
    assert mp_client.anonymous().post("auth/login", json={"code": code}).status_code == 200
    assert_error(mp_client.anonymous().post("auth/login", json={"code": code}), 401, "code_used")


def test_login_when_wechat_is_unreachable_is_503(app, mp_client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    previous = app.config["WECHAT_API_BASE"]
    app.config["WECHAT_API_BASE"] = f"http://127.0.0.1:{port}/"
    try:
        assert_error(mp_client.anonymous().post("auth/login", json={"code": "code-x"}), 503, "wechat_unavailable")
    finally:
        app.config["WECHAT_API_BASE"] = previous


def test_login_validates_the_body(mp_client):
    anon = mp_client.anonymous()
    assert_error(anon.post("auth/login", json={}), 422, "validation_failed")
    assert_error(anon.post("auth/login", json={"code": ""}), 422)
    assert_error(anon.post("auth/login", json={"code": 123}), 422)
    assert_error(anon.post("auth/login", json=["code"]), 400, "invalid_json")
    assert_error(anon.post("auth/login", data="{not json", content_type="application/json"), 400, "invalid_json")
    assert_error(anon.post("auth/login"), 400, "invalid_json")


def test_secret_and_session_key_never_reach_the_log(app, mp_client, fake_wechat, caplog):
    caplog.set_level(logging.DEBUG)
    mp_client.logged_in()
    mp_client.anonymous().post("auth/login", json={"code": "no-such-code"})
    # werkzeug's lines are the fake WeChat server's own access log (it plays WeChat, not us)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))
    assert fake_wechat.settings["WECHAT_SECRET"] not in text
    assert "session_key" not in text


def test_logout_revokes_the_token(mp_client, market):
    owner = mp_client.bound(market.merchants_a[0])
    assert owner.post("auth/logout").status_code == 204
    assert_error(owner.get("me"), 401, "invalid_token")
    assert_error(owner.post("auth/logout"), 401, "invalid_token")


def test_expired_token_is_401(mp_client, market):
    owner = mp_client.bound(market.merchants_a[0])
    token = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == mp_auth.hash_token(owner.token))).scalar_one()
    token.expires_dt = now_utc() - timedelta(seconds=1)
    db.session.commit()
    assert_error(owner.get("me"), 401, "token_expired")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer not-a-token", "Bearer " + "x" * 500])
def test_bad_authorization_headers_are_401(mp_client, header):
    resp = mp_client.anonymous().get("me", headers={"Authorization": header} if header else {})
    assert_error(resp, 401)


def test_bind_by_phone_binds_every_merchant_with_that_phone_or_phone2(mp_client, market):
    first, second = market.merchants_a[0], market.merchants_b[0]
    second.phone2 = first.phone
    db.session.commit()
    client = mp_client.bound(first)
    db.session.expire_all()
    bindings = db.session.execute(sa.select(MerchantBinding).order_by(MerchantBinding.merchant_id)).scalars().all()
    assert [(b.merchant_id, b.role.value, b.bound_via.value) for b in bindings] == [
        (first.id, "owner", "phone"), (second.id, "owner", "phone")]
    # default merchant is the first binding; X-Merchant-Id picks the other
    assert client.get("me").get_json()["merchant"]["id"] == first.id
    client.merchant_id = second.id
    assert client.get("me").get_json()["merchant"]["id"] == second.id
    client.merchant_id = market.merchants_a[1].id
    assert_error(client.get("me"), 403, "merchant_not_bound")
    client.merchant_id = "abc"
    assert_error(client.get("me"), 400)


def test_bind_with_an_unregistered_phone_is_404_in_chinese(mp_client, market):
    client = mp_client.logged_in()
    err = assert_error(mp_client.bind_phone(client, "13999999999"), 404, "phone_not_registered")
    assert "手机号" in err["message"]
    assert_error(client.get("me"), 403, "not_bound")


def test_bind_never_trusts_a_phone_number_sent_by_the_client(mp_client, market):
    client = mp_client.logged_in()
    resp = client.post("auth/bind", json={"phone": market.merchants_a[0].phone})
    assert_error(resp, 422)
    resp = client.post("auth/bind", json={"phone_code": "x", "phone": market.merchants_a[0].phone})
    assert_error(resp, 422)
    assert db.session.execute(sa.select(sa.func.count(MerchantBinding.id))).scalar_one() == 0


def test_bind_with_an_invalid_or_used_phone_code(mp_client, market):
    client = mp_client.logged_in()
    assert_error(client.post("auth/bind", json={"phone_code": "bogus"}), 400, "invalid_phone_code")
    code = f"pc-{uuid.uuid4().hex}"
    mp_client.fake.register_phone(code, market.merchants_a[0].phone)
    assert client.post("auth/bind", json={"phone_code": code}).status_code == 200
    assert_error(client.post("auth/bind", json={"phone_code": code}), 400, "phone_code_used")


def test_bind_needs_exactly_one_of_phone_code_and_bind_token(mp_client):
    client = mp_client.logged_in()
    assert_error(client.post("auth/bind", json={}), 422)
    assert_error(client.post("auth/bind", json={"phone_code": "a", "bind_token": "b"}), 422)
    assert_error(mp_client.anonymous().post("auth/bind", json={"phone_code": "a"}), 401)


def test_bind_by_stall_qr_code_binds_the_current_tenant_as_assistant(mp_client, market):
    unit = market.units_b[1]
    client = mp_client.logged_in()
    resp = client.post("auth/bind", json={"bind_token": make_bind_token(unit)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["is_bound"] is True
    assert body["bound"][0]["merchant_id"] == market.merchants_b[1].id
    assert body["bound"][0]["role"] == "assistant" and body["bound"][0]["bound_via"] == "qr"
    me = client.get("me").get_json()
    assert me["role"] == "assistant" and me["merchant"]["id"] == market.merchants_b[1].id


def test_bind_by_the_whole_scanned_url(app, mp_client, market):
    from app.services.bind_tokens import bind_url

    unit = market.units_a[0]
    with app.test_request_context():
        url = bind_url(make_bind_token(unit))
    client = mp_client.logged_in()
    assert client.post("auth/bind", json={"bind_token": url}).status_code == 200
    assert client.get("me").get_json()["merchant"]["id"] == market.merchants_a[0].id


def test_tampered_and_expired_bind_tokens_are_refused(app, mp_client, market):
    client = mp_client.logged_in()
    token = make_bind_token(market.units_a[0])
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert_error(client.post("auth/bind", json={"bind_token": tampered}), 400, "bind_token_invalid")
    assert_error(client.post("auth/bind", json={"bind_token": "garbage"}), 400, "bind_token_invalid")
    previous = app.config["MP_BIND_TOKEN_TTL_SECONDS"]
    app.config["MP_BIND_TOKEN_TTL_SECONDS"] = -1
    try:
        err = assert_error(client.post("auth/bind", json={"bind_token": token}), 400, "bind_token_expired")
        assert "过期" in err["message"]
    finally:
        app.config["MP_BIND_TOKEN_TTL_SECONDS"] = previous
    assert db.session.execute(sa.select(sa.func.count(MerchantBinding.id))).scalar_one() == 0


def test_a_stall_without_a_current_lease_cannot_be_bound(mp_client, market):
    market.leases[0].status = LeaseStatus.ended
    db.session.commit()
    client = mp_client.logged_in()
    assert_error(client.post("auth/bind", json={"bind_token": make_bind_token(market.units_a[0])}),
                 404, "unit_not_leased")


def test_owner_is_not_downgraded_by_scanning_a_qr_code(mp_client, market):
    owner = mp_client.bound(market.merchants_a[0])
    mp_client.assistant(market.units_a[0], client=owner)
    assert owner.get("me").get_json()["role"] == "owner"


def test_revoked_binding_stops_working_on_the_next_request_and_can_be_bound_again(mp_client, market):
    owner = mp_client.bound(market.merchants_a[0])
    assert owner.get("me").status_code == 200
    binding = db.session.execute(sa.select(MerchantBinding)).scalar_one()
    mp_auth.revoke_binding(binding)
    db.session.commit()
    assert_error(owner.get("me"), 403, "not_bound")
    mp_client.bound(market.merchants_a[0], client=owner)
    assert owner.get("me").status_code == 200
    assert db.session.execute(sa.select(sa.func.count(MerchantBinding.id))).scalar_one() == 1


def test_one_merchant_may_have_several_users(mp_client, market):
    merchant = market.merchants_a[0]
    owner = mp_client.bound(merchant)
    assistant = mp_client.assistant(market.units_a[0])
    assert owner.get("me").get_json()["merchant"]["id"] == merchant.id
    assert assistant.get("me").get_json()["merchant"]["id"] == merchant.id
    assert db.session.execute(
        sa.select(sa.func.count(MerchantBinding.id)).where(MerchantBinding.merchant_id == merchant.id)
    ).scalar_one() == 2
