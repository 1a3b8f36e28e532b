"""Fixtures and helpers for the WeChat Pay tests (import the fixtures you use into the test module).

    from tests.wechatpay_support import live_server, wxpay, make_bill  # noqa: F401

`live_server` serves the session's app on a free loopback port (werkzeug, threaded) so that the fake
WeChat delivers notifications over real HTTP; `wxpay` points the app's WeChat Pay client at the fake
with notify URLs on that live server.
"""
from __future__ import annotations

import threading
from datetime import date

import pytest
from werkzeug.serving import make_server

from app.extensions import db
from app.integrations.wechatpay import WeChatPay, WeChatPayConfig
from app.models import Bill
from app.models.enums import BillKind, BillStatus

NOTIFY_PATH = "/api/mp/v1/wechatpay/notify"
REFUND_NOTIFY_PATH = "/api/mp/v1/wechatpay/refund-notify"


@pytest.fixture(scope="session")
def live_server(app):
    """The app served on 127.0.0.1:<free port> in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def wxpay(app, fake_wechat, live_server):
    """The app's WeChat Pay client (public-key mode) on the fake; notifications go to the live server."""
    client = WeChatPay(WeChatPayConfig.from_env(
        fake_wechat.settings,
        notify_url=live_server + NOTIFY_PATH,
        refund_notify_url=live_server + REFUND_NOTIFY_PATH,
    ))
    app.extensions["wechatpay"] = client
    yield client
    app.extensions.pop("wechatpay", None)


_bill_seq = iter(range(1, 10**6))


def make_bill(merchant, amount_fen: int, period: date = date(2026, 10, 1), status=BillStatus.issued,
              late_fee_fen: int = 0) -> Bill:
    """An issued bill of amount_fen for the merchant (flushed, not committed)."""
    n = next(_bill_seq)
    bill = Bill(
        market_id=merchant.market_id, number=f"WX-{period:%Y%m}-{n:05d}", kind=BillKind.adhoc, status=status,
        merchant_id=merchant.id, zone_id=merchant.zone_id, period=period, issue_date=period,
        due_date=date(period.year, period.month, 15), amount_fen=amount_fen, late_fee_fen=late_fee_fen,
    )
    db.session.add(bill)
    db.session.flush()
    return bill
