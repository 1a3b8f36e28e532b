"""Fixtures for the WeChat adapters: a FakeWeChat on 127.0.0.1, clients configured from its wechat.env,
and a small HTTP receiver that plays the app's notification endpoint."""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

from app.integrations.fake_wechat import FakeWeChat
from app.integrations.wechat import WeChatMiniProgram
from app.integrations.wechatpay import NotificationRejected, WeChatPay, WeChatPayConfig


# These adapters are plain Python: no app, no database, no Redis. Override the suite-wide autouse
# fixtures of tests/conftest.py (same names) so these tests neither build the app nor depend on it.
@pytest.fixture
def app_context():
    """No app context here."""
    yield None


@pytest.fixture
def db():
    """No database here."""
    yield None


@pytest.fixture
def _redis():
    """No Redis here."""
    yield None


def _new_no(prefix: str = "T") -> str:
    """A fresh out_trade_no / out_refund_no (6-32 chars)."""
    return prefix + uuid.uuid4().hex[:24]


@pytest.fixture
def new_no():
    """Make fresh merchant order / refund numbers: new_no("R")."""
    return _new_no


class NotificationReceiver:
    """The app's notify_url: records every POST and answers like the app would."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        #: When set, each notification is checked with it: 200 when it passes, 400 when rejected.
        self.verify: Callable[[dict[str, str], bytes], Any] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers.items())
                receiver.received.append({"path": self.path, "headers": headers, "body": body})
                status, answer = 204, b""
                if receiver.verify is not None:
                    try:
                        receiver.verify(headers, body)
                    except NotificationRejected as exc:
                        status = 400
                        answer = json.dumps({"code": "FAIL", "message": exc.reason}).encode()
                    else:
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The notify_url to give WeChat Pay."""
        return f"http://127.0.0.1:{self._server.server_port}/wechatpay/notify"

    def last(self) -> dict[str, Any]:
        """The most recent notification received."""
        assert self.received, "no notification received"
        return self.received[-1]

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def fake(tmp_path_factory):
    """One fake WeChat for the session (keys are generated once)."""
    with FakeWeChat(tmp_path_factory.mktemp("fake_wechat")) as server:
        yield server


@pytest.fixture
def receiver():
    """A fresh notification endpoint per test."""
    endpoint = NotificationReceiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def wechat(fake):
    """Mini-program client configured from the fake's wechat.env values."""
    return WeChatMiniProgram.from_env(fake.settings)


@pytest.fixture
def pay(fake, receiver):
    """WeChat Pay client in platform-public-key mode; notifications go to `receiver`."""
    client = WeChatPay(WeChatPayConfig.from_env(fake.settings, notify_url=receiver.url))
    receiver.verify = client.parse_notification
    return client


@pytest.fixture
def cert_mode(fake):
    """The fake signs with its platform certificate (Wechatpay-Serial = certificate serial)."""
    fake.configure(platform_mode="certificate")
    yield fake
    fake.configure(platform_mode="public_key")


@pytest.fixture
def cert_pay(fake, receiver, cert_mode, tmp_path):
    """WeChat Pay client in platform-certificate mode (certificates downloaded via /v3/certificates)."""
    config = WeChatPayConfig.from_env(
        fake.settings,
        notify_url=receiver.url,
        public_key_pem=None,
        public_key_id=None,
        platform_cert_dir=str(tmp_path / "platform_certs"),
    )
    client = WeChatPay(config)
    receiver.verify = client.parse_notification
    return client


@pytest.fixture
def paid_order(fake, pay):
    """An order of 1000 fen, created through the client and paid (notification not sent)."""
    out_trade_no = _new_no("P")
    pay.create_jsapi_order(out_trade_no, "摊位管理费 2026-11", 1000, "openid-payer")
    fake.pay(out_trade_no, notify=False)
    return out_trade_no
