"""Configuration profiles refuse unsafe production set-ups."""
import pytest

import config


def test_production_refuses_without_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://x@127.0.0.1/x")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        config.get_config("production")


def test_production_has_debug_off_and_demo_disabled(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://x@127.0.0.1/x")
    cfg = config.get_config("production")
    assert cfg.DEBUG is False
    assert cfg.DEMO_ALLOWED is False


def test_unknown_profile_is_an_error():
    with pytest.raises(RuntimeError, match="unknown MARKET_ENV"):
        config.get_config("staging-typo")
