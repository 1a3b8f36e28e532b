"""RQ jobs: thin functions that take ids, push an app context and call a service.

Workers run `rq worker --url $REDIS_URL imports billing notifications default` (docs/deploy.md);
the app is built once per worker process on first use, never at import.
"""
from __future__ import annotations

import functools

from flask import current_app, has_app_context

_app = None


def get_app():
    """The Flask app for job execution (built lazily, once per process)."""
    global _app
    if has_app_context():
        return current_app._get_current_object()
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def job(func):
    """Run the job body inside an app context and commit once at the end (the edge)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return _run(func, args, kwargs)
        with get_app().app_context():
            return _run(func, args, kwargs)

    return wrapper


def _run(func, args, kwargs):
    from app.extensions import db

    try:
        result = func(*args, **kwargs)
        db.session.commit()
        return result
    except Exception:
        db.session.rollback()
        raise


def set_progress(done: int, total: int, message: str = "") -> None:
    """Record progress in job.meta (read by the back office progress bars)."""
    from rq import get_current_job

    current = get_current_job()
    if current is None:
        return
    current.meta.update({"done": done, "total": total, "message": message})
    current.save_meta()
