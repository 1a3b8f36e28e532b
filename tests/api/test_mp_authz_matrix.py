"""Authorization matrix: every endpoint of tests/api/endpoints.py x (own merchant, another merchant,
no token, expired token, revoked token, revoked binding, X-Merchant-Id of a merchant not bound)."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, MerchantBinding
from app.services import mp_auth
from app.utils.dates import now_utc
from tests.api.endpoints import ENDPOINTS
from tests.api.helpers import assert_error
from tests.factories import make_bill

SCENARIOS = ["own", "other_merchant", "no_token", "expired_token", "revoked_token", "revoked_binding",
             "foreign_merchant_header"]


@pytest.fixture
def target(market):
    """Merchant A1 with a paid bill (number and name must never leak to others)."""
    from app.services.payments import record_payment

    bill = make_bill(market.leases[0], amount_fen=12345, number="BILL-TARGET-1")
    record_payment(market.market.id, bill.merchant_id, [bill.id], 12345, "cash", "CASH-MATRIX-1", now_utc())
    db.session.commit()
    return {"bill_id": bill.id, "merchant": market.merchants_a[0], "number": bill.number}


def _call(client, endpoint, target):
    path = endpoint.path.format(bill_id=target["bill_id"])
    return client.open(endpoint.method, path, json=endpoint.json)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_authorization_matrix(mp_client, market, target, endpoint, scenario):
    merchant = target["merchant"]
    if scenario == "own":
        resp = _call(mp_client.bound(merchant), endpoint, target)
        assert resp.status_code in endpoint.ok, resp.get_data(as_text=True)[:300]
        return
    if scenario == "other_merchant":
        other = mp_client.bound(market.merchants_b[0])
        resp = _call(other, endpoint, target)
        if endpoint.auth == "token":
            assert resp.status_code in endpoint.ok
            return
        assert resp.status_code in endpoint.other, resp.get_data(as_text=True)[:300]
        text = resp.get_data(as_text=True)
        assert target["number"] not in text and merchant.name not in text
        if resp.status_code >= 400:
            assert_error(resp, resp.status_code)
        return
    if scenario == "no_token":
        assert_error(_call(mp_client.anonymous(), endpoint, target), 401, "unauthorized")
        return
    client = mp_client.bound(merchant)
    if scenario == "expired_token":
        row = db.session.execute(
            sa.select(ApiToken).where(ApiToken.token_hash == mp_auth.hash_token(client.token))).scalar_one()
        row.expires_dt = now_utc() - timedelta(minutes=1)
        db.session.commit()
        assert_error(_call(client, endpoint, target), 401, "token_expired")
    elif scenario == "revoked_token":
        assert client.post("auth/logout").status_code == 204
        assert_error(_call(client, endpoint, target), 401, "invalid_token")
    elif scenario == "revoked_binding":
        for binding in db.session.execute(sa.select(MerchantBinding)).scalars():
            mp_auth.revoke_binding(binding)
        db.session.commit()
        resp = _call(client, endpoint, target)
        if endpoint.auth == "token":
            assert resp.status_code in endpoint.ok
        else:
            assert_error(resp, 403, "not_bound")
    elif scenario == "foreign_merchant_header":
        client.merchant_id = market.merchants_b[0].id
        resp = _call(client, endpoint, target)
        if endpoint.auth == "token":
            assert resp.status_code in endpoint.ok
        else:
            assert_error(resp, 403, "merchant_not_bound")
