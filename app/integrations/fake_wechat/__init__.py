"""A fake WeChat (mini-program server API) and WeChat Pay API v3 on loopback, for tests and the demo.

    with FakeWeChat("var/fake_wechat") as fake:
        fake.base_url            # http://127.0.0.1:PORT
        fake.register_code("c1", "openid-1")
        fake.pay("BILL-0001")    # marks paid and POSTs a signed notification to the app

Command line: python -m app.integrations.fake_wechat --port 9100 --state-dir var/fake_wechat
See docs/wechat.md.
"""
from .notifications import TAMPERS
from .server import FakeWeChat
from .web import FakeError

__all__ = ["FakeError", "FakeWeChat", "TAMPERS"]
