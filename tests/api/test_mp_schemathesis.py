"""schemathesis over the served OpenAPI document (/api/mp/v1/openapi.json), in-process over WSGI.

Every documented operation is fuzzed (schema examples, coverage and random positive/negative data)
twice: as a WeChat user bound to a merchant that has unpaid, overdue and paid bills (with WeChat Pay on
the fake server), and without a token. The WeChat Pay notification endpoints, which answer WeChat and
are not part of the mini-program document, are fuzzed through a small document of their own.

Checks: no 5xx, every status code and content type documented, every JSON body valid against the
documented schema, headers as documented. The example count is bounded and the generation
derandomized, so a run is reproducible and takes well under a minute.
"""
from __future__ import annotations

import os
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app import create_app
from app.extensions import db
from app.models.enums import BillKind
from app.utils.dates import now_utc, today_local
from tests.api.helpers import API
from tests.factories import make_bill
from tests.wechatpay_support import REFUND_NOTIFY_PATH, NOTIFY_PATH, live_server, wxpay  # noqa: F401

#: Checks of every pass: no 5xx; status codes, content types, bodies and headers as documented;
#: undocumented methods answer 405 with an Allow header; a missing required header is refused.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
    allow_header_conformance,
    missing_required_header,
]
#: With a token: also re-send each successful request without it and with a wrong one (must answer 401).
AUTHENTICATED_CHECKS = [*CHECKS, ignored_auth]
#: Without a token: also every schema-violating request must be refused (401 or 4xx).
ANONYMOUS_CHECKS = [*CHECKS, negative_data_rejection]
# Not used with a token:
# - negative_data_rejection: the test replaces the generated Authorization header with a valid token,
#   which schemathesis then counts as a "schema-violating" request that was accepted; and a blank
#   X-Merchant-Id deliberately means "the first bound merchant".
# - positive_data_acceptance: schema-valid data is refused for reasons no schema can express (a random
#   phone code or bind_token is 400 invalid_phone_code / bind_token_invalid, a random wx.login() code is
#   401, a bill of another merchant is 404).

FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("MP_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture
def merchant_with_bills(market):
    """Merchant A1 with a partly paid overdue bill, an unpaid one and a paid one (with a receipt):
    .merchant and .bill_ids."""
    from app.services.payments import record_payment

    lease = market.leases[0]
    today = today_local()
    overdue = make_bill(lease, lines=[("摊位租金", 72000), ("管理费", 5000)], due_date=today - timedelta(days=3),
                        late_fee_fen=120, period=date(2026, 9, 1))
    unpaid = make_bill(lease, amount_fen=30000, due_date=today + timedelta(days=10), kind=BillKind.adhoc)
    paid = make_bill(lease, amount_fen=50000, due_date=today - timedelta(days=40), period=date(2026, 8, 1))
    record_payment(market.market.id, lease.merchant_id, [paid.id], 50000, "cash", "CASH-ST-1",
                   now_utc() - timedelta(days=1))
    record_payment(market.market.id, lease.merchant_id, [overdue.id], 1000, "cash", "CASH-ST-2",
                   now_utc() - timedelta(hours=1))
    db.session.commit()
    return SimpleNamespace(merchant=lease.merchant, bill_ids=[overdue.id, unpaid.id, paid.id])


@pytest.fixture
def owner(mp_client, merchant_with_bills, wxpay):
    """A logged-in WeChat user bound (phone code) as the owner of the merchant with bills."""
    return mp_client.bound(merchant_with_bills.merchant)


#: The served document, loaded by schemathesis over WSGI at collection time (serving it needs no database).
#: Requests go to the session's `app` (passed to each call), which talks to the fake WeChat servers.
#: (schemathesis.pytest.from_fixture would load it from a fixture, but 4.32 sets Function._nodeid, which
#: pytest 9 no longer has.)
schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", create_app("testing"))


def _is_logout(case) -> bool:
    return case.operation.path == "/api/mp/v1/auth/logout"


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_a_bound_merchant(case, app, owner, mp_client):
    """Every operation with the owner's token (and whatever X-Merchant-Id schemathesis generates)."""
    token = owner.token
    if _is_logout(case):
        token = mp_client.logged_in().token  # logging out must not end the session the other cases use
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {token}"}, checks=AUTHENTICATED_CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_acting_for_the_default_merchant_on_its_own_bills(case, app, owner, mp_client, merchant_with_bills):
    """As above, without X-Merchant-Id and with integer bill ids mapped onto the merchant's own bills,
    so that bill detail, receipts and payments answer their success statuses too."""
    token = owner.token
    if _is_logout(case):
        token = mp_client.logged_in().token
    if case.headers:
        case.headers.pop("X-Merchant-Id", None)
    own = merchant_with_bills.bill_ids
    if isinstance((case.path_parameters or {}).get("bill_id"), int):
        case.path_parameters["bill_id"] = own[case.path_parameters["bill_id"] % len(own)]
    if isinstance(case.body, dict) and isinstance(case.body.get("bill_ids"), list):
        case.body["bill_ids"] = [own[i % len(own)] if isinstance(i, int) and not isinstance(i, bool) else i
                                 for i in case.body["bill_ids"]]
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {token}"}, checks=AUTHENTICATED_CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_without_a_token(case, app, fake_wechat, merchant_with_bills):
    """Every operation without a token: protected ones refuse (401, or 4xx for a malformed request)."""
    if case.headers:
        case.headers.pop("Authorization", None)
    response = case.call_and_validate(app=app, checks=ANONYMOUS_CHECKS)
    # (the coverage phase also sends other methods, e.g. OPTIONS, which Flask answers itself)
    if "security" in case.operation.definition.raw and case.method.upper() == case.operation.method.upper():
        assert response.status_code in (400, 401, 404, 405, 413, 415, 422), (response.status_code, response.content)


#: The WeChat Pay notification endpoints as WeChat calls them (headers per the v3 callback spec).
NOTIFY_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "WeChat Pay notifications", "version": "1"},
    "paths": {
        path: {"post": {
            "parameters": [
                {"in": "header", "name": name, "required": False, "schema": {"type": "string"}}
                for name in ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
                             "Wechatpay-Serial", "Wechatpay-Signature-Type")
            ],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "create_time": {"type": "string"},
                    "event_type": {"type": "string", "enum": ["TRANSACTION.SUCCESS", "REFUND.SUCCESS",
                                                               "REFUND.ABNORMAL", "REFUND.CLOSED"]},
                    "resource_type": {"type": "string"},
                    "resource": {"type": "object", "properties": {
                        "algorithm": {"type": "string"}, "ciphertext": {"type": "string"},
                        "nonce": {"type": "string"}, "associated_data": {"type": "string"},
                        "original_type": {"type": "string"}}},
                },
            }}}},
            "responses": {"204": {"description": "Received"}, "default": {"description": "Refused"}},
        }}
        for path in (NOTIFY_PATH, REFUND_NOTIFY_PATH)
    },
}


notify = schemathesis.openapi.from_dict(NOTIFY_DOCUMENT)


@notify.parametrize()
@FUZZ_SETTINGS
def test_wechatpay_notifications_never_answer_5xx_to_junk(case, app, wxpay):
    """Unsigned, malformed or mistyped notifications are refused with 4xx, never 5xx."""
    response = case.call_and_validate(app=app, checks=[not_a_server_error])
    if case.method.upper() == "POST":
        assert response.status_code in (204, 400, 401, 413, 415), response.status_code
