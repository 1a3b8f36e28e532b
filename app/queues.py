"""RQ queues on Redis, or on fakeredis with jobs run in-process (the embedded default)."""
from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue

QUEUE_NAMES = ("default", "imports", "billing", "notifications")
_fake_server = None


def init_app(app):
    """Remember how to reach Redis; connections are made lazily."""
    app.extensions["market_queues"] = {}


def get_redis():
    """The Redis connection for jobs: REDIS_URL, or an in-process fakeredis server."""
    global _fake_server
    url = current_app.config.get("REDIS_URL")
    cache = current_app.extensions.setdefault("market_queues", {})
    if "redis" not in cache:
        if url:
            cache["redis"] = Redis.from_url(url)
        else:
            import fakeredis

            if _fake_server is None:
                _fake_server = fakeredis.FakeServer()
            cache["redis"] = fakeredis.FakeRedis(server=_fake_server)
    return cache["redis"]


def is_embedded() -> bool:
    """True when no REDIS_URL is configured and jobs run in-process."""
    return not current_app.config.get("REDIS_URL")


def get_queue(name: str = "default") -> Queue:
    """The named queue; synchronous (in-process) in the embedded default."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name}")
    return Queue(name, connection=get_redis(), is_async=not is_embedded())
