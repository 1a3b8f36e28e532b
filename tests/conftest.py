"""Shared fixtures: the app on SQLite or PostgreSQL (DATABASE_URL), Redis or fakeredis
(REDIS_URL), a clean database for every test, staff logins and a small market."""
from __future__ import annotations

import contextvars
import os
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

_tmp = Path(tempfile.mkdtemp(prefix="market-test-"))
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{_tmp / 'test.sqlite'}"
os.environ.setdefault("MARKET_VAR_DIR", str(_tmp))

from app import create_app  # noqa: E402
from app.extensions import db as _db  # noqa: E402

PASSWORD = "password-123"


class IsolatedClient(FlaskClient):
    """A test client whose requests run in their own app context (own session, own g),
    as they would in a server, even while the test holds an app context open."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def app():
    """One app for the session, with every table created fresh."""
    application = create_app("testing")
    application.config["MARKET_VAR_DIR"] = os.environ["MARKET_VAR_DIR"]
    application.test_client_class = IsolatedClient
    with application.app_context():
        _db.drop_all()
        _db.create_all()
        _db.session.remove()
    return application


@pytest.fixture(autouse=True)
def app_context(app):
    """A fresh app context (and g) for each test."""
    with app.app_context():
        yield


def _reset_database():
    _db.session.rollback()
    _db.session.remove()
    metadata = _db.Model.metadata
    with _db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture(autouse=True)
def db(app, app_context):
    """The database, emptied after each test (so jobs in other connections see real commits)."""
    from app.services.staff import ensure_roles

    ensure_roles()
    _db.session.commit()
    yield _db
    _reset_database()


@pytest.fixture(autouse=True)
def _redis(app, app_context):
    """Empty the job Redis database before each test (REDIS_URL) or use fakeredis."""
    from app.queues import get_redis

    conn = get_redis()
    conn.flushdb()
    yield conn


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def market(db):
    """A small market: zones A and B with two units each, merchants, leases, meters, fee items."""
    from tests.factories import build_small_market

    data = build_small_market()
    db.session.commit()
    return data


@pytest.fixture
def staff(db, market):
    """One user per role; manager1 manages zone A only, manager2 zone B."""
    from app.services.staff import assign_zone_manager, create_staff_user

    users = {}
    for username, role in (
        ("admin", "Admin"),
        ("leader", "Leader"),
        ("manager1", "Manager"),
        ("manager2", "Manager"),
        ("clerk", "Clerk"),
        ("finance", "Finance"),
        ("repairer1", "Repairer"),
    ):
        users[username] = create_staff_user(username, PASSWORD, [role], first_name=username)
    assign_zone_manager(market.zone_a, users["manager1"])
    assign_zone_manager(market.zone_b, users["manager2"])
    db.session.commit()
    return users


@pytest.fixture
def login_as(app, staff):
    """Return a test client logged in as the given username."""

    def _login(username):
        c = app.test_client()
        resp = c.post("/login/", data={"username": username, "password": PASSWORD})
        assert resp.status_code == 302, resp.data[:500]
        return c

    return _login


@pytest.fixture
def decimal():
    return Decimal


@pytest.fixture(scope="session")
def fake_wechat(app, tmp_path_factory):
    """A FakeWeChat (WeChat mini-program + WeChat Pay v3 on 127.0.0.1, free port) for the session.

    The app's config gets every value of fake.settings (WECHAT_APPID / _SECRET / _API_BASE and the
    WECHATPAY_* keys and key paths), so code that builds its clients from app.config talks to the fake.
    Login codes "code-<openid>" log in as that openid; phone codes "phone-<digits>" give that number;
    fake.register_code / register_phone / pay(...) for more (docs/wechat.md). State (used codes, orders)
    lives for the whole session: use fresh codes and order numbers in each test.
    """
    from app.integrations.fake_wechat import FakeWeChat

    server = FakeWeChat(tmp_path_factory.mktemp("fake_wechat")).start()
    previous = {name: app.config.get(name) for name in server.settings}
    app.config.update(server.settings)
    yield server
    app.config.update(previous)
    server.stop()
