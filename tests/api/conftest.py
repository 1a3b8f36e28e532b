"""Fixtures for the mini-program API: logged-in API clients against the fake WeChat over HTTP.

    def test_x(mp_client, market):
        owner = mp_client.bound(market.merchants_a[0])          # logged in, bound as owner (phone code)
        owner.get("/api/mp/v1/bills")                          # sends Authorization: Bearer ...
        stranger = mp_client.logged_in()                        # logged in, not bound
        anonymous = mp_client.anonymous()                       # no token

The payments engineer's tests can use the same fixtures (`mp_client`, `fake_wechat`).
"""
from __future__ import annotations

import pytest

from tests.api.helpers import MpClients


@pytest.fixture
def mp_client(app, fake_wechat):
    """Factory of API clients: .anonymous(), .logged_in(), .bound(merchant), .assistant(unit)."""
    return MpClients(app, fake_wechat)
