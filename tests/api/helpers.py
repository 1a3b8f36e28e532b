"""Helpers for the mini-program API tests (import from tests.api.helpers)."""
from __future__ import annotations

import uuid

API = "/api/mp/v1"


class MpClient:
    """A test client that adds `Authorization: Bearer <token>` (and X-Merchant-Id when set)."""

    def __init__(self, app, token: str | None = None, openid: str | None = None):
        self._client = app.test_client()
        self.token = token
        self.openid = openid
        self.merchant_id: int | None = None
        self.login_answer: dict | None = None

    def _headers(self, headers):
        merged = {}
        if self.token:
            merged["Authorization"] = f"Bearer {self.token}"
        if self.merchant_id is not None:
            merged["X-Merchant-Id"] = str(self.merchant_id)
        merged.update(headers or {})
        return merged

    def open(self, method, path, headers=None, **kwargs):
        if not path.startswith("/"):
            path = f"{API}/{path}"
        return self._client.open(path, method=method.upper(), headers=self._headers(headers), **kwargs)

    def get(self, path, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.open("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.open("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.open("DELETE", path, **kwargs)


class MpClients:
    """Makes MpClients that log in through POST /auth/login against the fake WeChat."""

    def __init__(self, app, fake):
        self.app = app
        self.fake = fake

    def login_code(self, openid: str) -> str:
        """A fresh single-use wx.login() code for openid."""
        code = f"login-{uuid.uuid4().hex}"
        self.fake.register_code(code, openid)
        return code

    def anonymous(self) -> MpClient:
        return MpClient(self.app)

    def logged_in(self, openid: str | None = None) -> MpClient:
        """Logged in (POST /auth/login) as openid (default: a new user); not bound to anything."""
        openid = openid or f"o-{uuid.uuid4().hex[:20]}"
        client = MpClient(self.app, openid=openid)
        resp = client.post("auth/login", json={"code": self.login_code(openid)})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        client.login_answer = resp.get_json()
        client.token = client.login_answer["token"]
        return client

    def bind_phone(self, client: MpClient, phone: str):
        """POST /auth/bind with a phone code for that number."""
        return client.post("auth/bind", json={"phone_code": f"phone-{phone}"})

    def bound(self, merchant, client: MpClient | None = None) -> MpClient:
        """A user bound as owner of merchant through the phone code flow."""
        client = client or self.logged_in()
        code = f"pc-{uuid.uuid4().hex}"
        self.fake.register_phone(code, merchant.phone)
        resp = client.post("auth/bind", json={"phone_code": code})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return client

    def assistant(self, unit, client: MpClient | None = None) -> MpClient:
        """A user bound as a shop assistant by scanning the unit's QR code."""
        from app.services.bind_tokens import make_bind_token

        client = client or self.logged_in()
        resp = client.post("auth/bind", json={"bind_token": make_bind_token(unit)})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return client


def assert_error(resp, status: int, code: str | None = None):
    """The answer is the error envelope with this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/json", resp.mimetype
    body = resp.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
