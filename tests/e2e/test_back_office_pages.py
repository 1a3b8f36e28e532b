"""The back office as a user sees it: every main page renders in Chinese for each role, and
(when Chromium is installed) a real headless browser draws the login page, task list and map.

The browser test needs no Playwright: it serves the app on a loopback port, logs in through the
test client and lets a small WSGI wrapper hand the browser that session cookie. It is skipped
when Chromium is missing, except under CI (CI=true or REQUIRE_REAL_SERVICES=1), where it fails.
"""
import os
import re
import shutil
import subprocess
import threading

import pytest
from werkzeug.serving import make_server

PAGES = ["/tasks/", "/stall-map/", "/unitview/list/", "/merchantview/list/", "/leaseview/list/", "/meterview/list/"]
#: Pages only some of those roles may open (Clerk and Finance have no tickets).
ROLE_PAGES = {"manager1": ["/ticketview/list/"], "leader": ["/ticketview/list/"]}
#: ASCII words allowed in a Chinese page (codes, units, brand names, the language menu).
ALLOWED_WORDS = {"English", "Excel", "kWh", "m²"}


def _visible_text(page):
    page = re.sub(r"<(script|style|title)\b.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"&[a-z]+;|&#\d+;", " ", page)


def _english_leftovers(page, *allowed):
    words = set(re.findall(r"\b[A-Za-z][a-z]{2,}\b", _visible_text(page)))
    return sorted(w for w in words if w not in ALLOWED_WORDS and w not in allowed)


@pytest.mark.parametrize("username", ["manager1", "leader", "clerk", "finance"])
def test_main_pages_render_in_chinese(login_as, market, username):
    client = login_as(username)
    for path in PAGES + ROLE_PAGES.get(username, []):
        resp = client.get(path)
        assert resp.status_code == 200, (username, path, resp.status_code)
        page = resp.get_data(as_text=True)
        assert "市场管家" in page
        leftovers = _english_leftovers(page, username)  # test users' names are their usernames
        assert not leftovers, (username, path, leftovers)


FINANCE_PAGES = ["/finance/alerts/", "/wechatpay/orders/", "/wechatpay/notifications/", "/wechatpay/refunds/",
                 "/wechatpay/reconciliation/", "/paymentview/list/", "/payments/offline/", "/billview/list/"]


def test_finance_pages_render_in_chinese(login_as, market):
    client = login_as("finance")
    for path in FINANCE_PAGES:
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        page = resp.get_data(as_text=True)
        assert "市场管家" in page
        leftovers = _english_leftovers(page, "finance")
        assert not leftovers, (path, leftovers)


def test_login_page_has_no_english_leftovers(client, db):
    page = client.get("/login/").get_data(as_text=True)
    assert not _english_leftovers(page), _english_leftovers(page)


def _must_run():
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REQUIRE_REAL_SERVICES") == "1"


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if _must_run():
        pytest.fail("Chromium is required for the browser test under CI")
    pytest.skip("Chromium not installed")


class _WithCookie:
    """WSGI wrapper that sends the given session cookie with every request."""

    def __init__(self, app, cookie):
        self.app, self.cookie = app, cookie

    def __call__(self, environ, start_response):
        if self.cookie:
            environ["HTTP_COOKIE"] = self.cookie
        return self.app(environ, start_response)


@pytest.fixture
def serve(app):
    """Serve the app on a free loopback port; optionally as a logged-in user."""
    servers = []

    def _serve(cookie=None):
        server = make_server("127.0.0.1", 0, _WithCookie(app.wsgi_app, cookie), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield _serve
    for server in servers:
        server.shutdown()


def _browser(chromium, *args):
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--window-size=1400,900", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_browser_draws_login_tasks_and_map(login_as, market, serve, tmp_path):
    chromium = _chromium()
    base = serve()
    login = _browser(chromium, "--dump-dom", f"{base}/login/")
    assert "登录" in login.stdout and "<title>市场管家</title>" in login.stdout, login.stderr[-2000:]

    client = login_as("manager1")
    cookie = f"session={client.get_cookie('session').value}"
    base = serve(cookie)
    tasks = _browser(chromium, "--dump-dom", f"{base}/tasks/").stdout
    assert "今日待办" in tasks and "待抄表" in tasks and "日常运营" in tasks
    stall_map = _browser(chromium, "--dump-dom", f"{base}/stall-map/").stdout
    assert 'data-code="A-001"' in stall_map and 'data-code="B-001"' not in stall_map
    shot = tmp_path / "map.png"
    _browser(chromium, f"--screenshot={shot}", f"{base}/stall-map/")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
