"""Run the fake WeChat server: python -m app.integrations.fake_wechat --port 9100 --state-dir var/fake_wechat."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .server import PLATFORM_MODES, FakeWeChat


def main(argv: list[str] | None = None) -> int:
    """Parse the options, write wechat.env and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m app.integrations.fake_wechat", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port (0 picks a free one; default 9100)")
    parser.add_argument("--state-dir", default="var/fake_wechat", help="where keys, config.json and wechat.env live")
    parser.add_argument("--app-notify-url", default=None,
                        help="send every notification here instead of the notify_url given with the order")
    parser.add_argument("--platform-mode", choices=PLATFORM_MODES, default="public_key",
                        help="sign with the platform public key (default) or the platform certificate")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fake = FakeWeChat(args.state_dir, port=args.port, app_notify_url=args.app_notify_url, host=args.host,
                      platform_mode=args.platform_mode)
    fake.start()
    print(f"Fake WeChat listening on {fake.base_url}", flush=True)
    print(f"Settings written to {fake.creds.path('wechat.env')}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
