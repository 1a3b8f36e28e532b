"""Alembic owns every table: an empty database upgrades to head and matches the models."""
import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from config import TestingConfig


def _make_app(url):
    from app import create_app

    cfg = type("MigrationTestConfig", (TestingConfig,), {"SQLALCHEMY_DATABASE_URI": url})
    return create_app(cfg)


def _upgrade_and_diff(url):
    import flask_migrate

    from app.extensions import db

    application = _make_app(url)
    with application.app_context():
        flask_migrate.upgrade(directory="migrations")
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            diff = compare_metadata(ctx, db.Model.metadata)
            tables = set(sa.inspect(conn).get_table_names())
        db.session.remove()
        db.engine.dispose()
    return diff, tables


def _assert_matches(diff, tables):
    assert {"ab_user", "ab_role", "markets", "units", "leases", "audit_log"} <= tables
    assert diff == [], f"models and migrations differ: {diff}"


def test_sqlite_upgrade_to_head_matches_models(tmp_path):
    diff, tables = _upgrade_and_diff(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
    _assert_matches(diff, tables)


def test_postgresql_upgrade_to_head_matches_models():
    url = os.environ.get("MIGRATION_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("REQUIRE_REAL_SERVICES"):
            pytest.fail("MIGRATION_TEST_DATABASE_URL must be set when REQUIRE_REAL_SERVICES is on")
        pytest.skip("set MIGRATION_TEST_DATABASE_URL (a throw-away PostgreSQL database) to run")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    diff, tables = _upgrade_and_diff(url)
    _assert_matches(diff, tables)
