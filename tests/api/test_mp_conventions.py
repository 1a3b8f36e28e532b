"""API conventions: OpenAPI document and docs page, error envelope for Flask's own errors, CSRF,
rate limit on login."""
from __future__ import annotations

import pytest

from tests.api.helpers import API, assert_error


def test_openapi_document_lists_every_route_with_schemas(app, client):
    resp = client.get(f"{API}/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("mp_api."):
            continue
        if not hasattr(app.view_functions[rule.endpoint], "_mp_auth"):
            continue  # public pages and WeChat's webhooks; every token-protected route must be documented
        path = rule.rule.replace("<int(signed=True):", "{").replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    assert (f"{API}/auth/login", "POST") in documented
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    login = doc["paths"][f"{API}/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Login")
    assert "security" not in login
    bills = doc["paths"][f"{API}/bills"]["get"]
    assert bills["security"] == [{"bearerAuth": []}]
    names = {p.get("name") for p in bills["parameters"]}
    assert {"page", "page_size", "status"} <= names
    assert doc["components"]["schemas"]["BillSummary"]["properties"]["amount_fen"]["type"] == "integer"
    assert doc["paths"][f"{API}/bills/{{bill_id}}/receipt"]["get"]["responses"]["409"]


def test_openapi_document_states_what_the_api_answers(client):
    """Statuses, bodies and input rules the API has, written down so that clients (and schemathesis)
    can rely on them."""
    import re

    from app.api.schemas.common import _CONTROL, MAX_ID, NO_CONTROL_CHARS_PATTERN

    doc = client.get(f"{API}/openapi.json").get_json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    assert "401" in paths[f"{API}/auth/login"]["post"]["responses"]  # invalid_code / code_used
    for path, ops in paths.items():
        for method, op in ops.items():
            if "X-Merchant-Id" in str(op["parameters"]):
                assert {"400", "403"} <= set(op["responses"]), (path, method)  # invalid_merchant_header
    payment = paths[f"{API}/payments"]["post"]["responses"]
    assert payment["200"]["content"] == payment["201"]["content"]  # 200 reused order, 201 new order
    assert schemas["Bind"]["oneOf"] == [{"required": ["phone_code"]}, {"required": ["bind_token"]}]
    assert paths[f"{API}/auth/bind"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Bind"}
    assert schemas["PaymentCreate"]["properties"]["bill_ids"]["items"]["maximum"] == MAX_ID
    for name, field in (("Login", "code"), ("Bind", "phone_code"), ("Bind", "bind_token"),
                        ("MePatch", "contact_name")):
        assert schemas[name]["properties"][field]["pattern"] == NO_CONTROL_CHARS_PATTERN
    pattern = re.compile(NO_CONTROL_CHARS_PATTERN)  # the same rule as the validator, character by character
    for code in range(0x300):
        assert bool(pattern.match(f"a{chr(code)}b")) is not bool(_CONTROL.search(chr(code))), hex(code)


def test_docs_page_uses_bundled_swagger_ui(client):
    resp = client.get(f"{API}/docs")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "http" not in html.replace(f"{API}/openapi.json", "")  # no CDN
    assert "/static/appbuilder/js/swagger-ui-bundle.js" in html
    assert client.get("/static/appbuilder/js/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/appbuilder/css/swagger/swagger-ui.css").status_code == 200


def test_flask_404_and_405_inside_the_blueprint_use_the_envelope(client):
    err = assert_error(client.get(f"{API}/no-such-thing"), 404, "not_found")
    assert err["message"] == "请求的内容不存在"
    resp = client.delete(f"{API}/auth/login")
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    # outside the API, Flask's pages are unchanged
    resp = client.get("/no-such-page-outside-the-api")
    assert resp.status_code == 404 and resp.mimetype == "text/html"


def test_oversized_bodies_are_refused(client):
    assert_error(client.post(f"{API}/auth/login", data=b"{" + b" " * 70000 + b"}",
                             content_type="application/json"), 413, "payload_too_large")


def test_the_api_is_not_subject_to_csrf(app, fake_wechat):
    from flask_wtf.csrf import CSRFProtect

    from app import create_app
    from config import TestingConfig

    class CsrfConfig(TestingConfig):
        WTF_CSRF_ENABLED = True

    fresh = create_app(CsrfConfig)
    CSRFProtect(fresh)
    fresh.config.update(fake_wechat.settings)
    from app.api.mp import mp_api

    fresh.extensions["csrf"].exempt(mp_api)  # what register() does when CSRFProtect comes first
    with fresh.app_context():
        resp = fresh.test_client().post(f"{API}/auth/login", json={"code": "not-a-valid-code"})
    assert_error(resp, 401, "invalid_code")


def test_register_exempts_the_blueprint_when_csrf_protect_is_installed_first():
    from flask import Flask
    from flask_wtf.csrf import CSRFProtect

    from app.api.mp import register

    flask_app = Flask("csrf-check")
    flask_app.config.update(SECRET_KEY="x", WTF_CSRF_ENABLED=True)
    csrf = CSRFProtect(flask_app)
    register(flask_app)
    assert "mp_api" in {getattr(bp, "name", bp) for bp in csrf._exempt_blueprints}


@pytest.fixture
def rate_limited_app(fake_wechat, request):
    """A fresh app with RATELIMIT_ENABLED (in-memory storage); the shared limiter is switched off after."""
    from app import create_app
    from app.extensions import limiter
    from config import TestingConfig

    class LimitedConfig(TestingConfig):
        RATELIMIT_ENABLED = True
        RATELIMIT_STORAGE_URI = "memory://"
        MP_LOGIN_RATE_LIMIT = "10/minute"
        PROXY_FIX_HOPS = getattr(request, "param", 0)

    fresh = create_app(LimitedConfig)
    fresh.config.update(fake_wechat.settings)
    limiter.reset()
    yield fresh
    limiter.reset()
    limiter.enabled = False


def test_login_is_rate_limited_per_ip(rate_limited_app):
    client = rate_limited_app.test_client()
    with rate_limited_app.app_context():
        statuses = [client.post(f"{API}/auth/login", json={"code": "bad"}).status_code for _ in range(10)]
        assert statuses == [401] * 10
        err = assert_error(client.post(f"{API}/auth/login", json={"code": "bad"}), 429, "rate_limited")
        assert "频繁" in err["message"]
        other_ip = client.post(f"{API}/auth/login", json={"code": "bad"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
        assert other_ip.status_code == 401


@pytest.mark.parametrize("rate_limited_app", [1], indirect=True)
def test_behind_a_proxy_the_limit_keys_on_the_forwarded_client_address(rate_limited_app):
    client = rate_limited_app.test_client()
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    with rate_limited_app.app_context():
        for _ in range(10):
            client.post(f"{API}/auth/login", json={"code": "bad"}, environ_base=proxy,
                        headers={"X-Forwarded-For": "203.0.113.7"})
        limited = client.post(f"{API}/auth/login", json={"code": "bad"}, environ_base=proxy,
                              headers={"X-Forwarded-For": "203.0.113.7"})
        other = client.post(f"{API}/auth/login", json={"code": "bad"}, environ_base=proxy,
                            headers={"X-Forwarded-For": "198.51.100.9"})
    assert limited.status_code == 429
    assert other.status_code == 401  # another merchant behind the same proxy is not blocked

