"""Property-style check over the served OpenAPI document with a fixed list of malformed and edge inputs
(cheap and exhaustive over that list; test_mp_schemathesis.py generates inputs with schemathesis):
every documented path and method never answers 5xx and always answers errors in the envelope."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.api.helpers import API, MpClient

PATH_VALUES = ["-1", "0", "1", str(2**63), str(10**30), "abc", quote("账单😀"), "1.5", "%00", "' OR 1=1 --"]
QUERY_VALUES = ["-1", "0", "1", "51", str(2**63), "abc", "🙂", "", "1e9", "null"]
WRONG_VALUES = [None, 0, -1, 2**70, 1.5, True, "", "x" * 5000, "账单😀\u0000", [], {}, ["a"], {"a": {"b": [1]}}]
RAW_BODIES = [None, b"", b"null", b"[]", b"\"text\"", b"123", b"{", b"{\"a\":", "{\"名\": \"值\"}".encode(),
              b"\xff\xfe\x00garbage", b"{}" * 1000]
HEADER_VALUES = ["-1", "abc", "9" * 40, "", " ", "1,2"]


def _operations(doc):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method.upper(), op


def _schema_props(doc, op):
    body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    if not body:
        return {}
    if "$ref" in body:
        body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body.get("properties", {})


def _check(resp, label):
    assert resp.status_code < 500, (label, resp.status_code, resp.get_data(as_text=True)[:300])
    if resp.status_code >= 400:
        assert resp.mimetype == "application/json", (label, resp.mimetype)
        body = resp.get_json()
        assert set(body) == {"error"}, (label, body)
        assert body["error"]["code"] and isinstance(body["error"]["code"], str), label
        assert body["error"]["message"] and isinstance(body["error"]["message"], str), label


def _cases(doc, path, method, op):
    """(path, kwargs) pairs of malformed and edge requests for one operation."""
    params = [p for p in op.get("parameters", []) if isinstance(p, dict)]
    path_params = [p["name"] for p in params if p.get("in") == "path"]
    query_params = [p["name"] for p in params if p.get("in") == "query"]

    def fill(value):
        result = path
        for name in path_params:
            result = result.replace("{%s}" % name, value)
        return result

    base = fill("1")
    for value in PATH_VALUES:
        yield fill(value), {}
    for name in query_params:
        for value in QUERY_VALUES:
            yield f"{base}?{name}={quote(value)}", {}
    yield f"{base}?page=1&page=2&page_size=50&unknown=%F0%9F%98%80", {}
    for value in HEADER_VALUES:
        yield base, {"headers": {"X-Merchant-Id": value}}
    if method in ("POST", "PATCH", "PUT"):
        for raw in RAW_BODIES:
            yield base, ({"data": raw, "content_type": "application/json"} if raw is not None else {})
        yield base, {"data": b"code=1", "content_type": "application/x-www-form-urlencoded"}
        for prop in _schema_props(doc, op):
            for value in WRONG_VALUES:
                yield base, {"data": json.dumps({prop: value}), "content_type": "application/json"}
        yield base, {"json": {"unexpected_field": "值"}}


@pytest.fixture
def openapi_doc(client):
    resp = client.get(f"{API}/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def test_every_documented_operation_survives_malformed_input(app, mp_client, market, openapi_doc):
    operations = list(_operations(openapi_doc))
    assert len(operations) >= 7
    for path, method, op in operations:
        authed = mp_client.bound(market.merchants_a[0])
        anonymous = MpClient(app)
        for url, kwargs in _cases(openapi_doc, path, method, op):
            if method == "POST" and url.endswith("/auth/logout"):
                client = anonymous  # logging out would end the session used by the other cases
            else:
                client = authed
            for who in (client, anonymous):
                resp = who.open(method, url, **kwargs)
                _check(resp, f"{method} {url} {kwargs!r:.120}")
