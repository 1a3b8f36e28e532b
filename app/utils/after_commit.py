"""Ids noted in a database session and handed to a callback once that session's transaction commits.

Used to send what a service stored (finance alerts, merchant notifications) only after the commit:
a rolled-back transaction hands over nothing, and nothing is sent while a request is being handled.
"""
from __future__ import annotations

import logging
from typing import Callable

import sqlalchemy as sa
from flask import has_app_context
from flask_sqlalchemy.session import Session as FlaskSession

log = logging.getLogger(__name__)

#: session.info key -> (callback taking the sorted, distinct ids, what they are for the log).
_callbacks: dict[str, tuple[Callable[[list[int]], None], str]] = {}


def note(session, key: str, item_id: int) -> None:
    """Remember an id in the session until its transaction commits (or forget it on rollback)."""
    session.info.setdefault(key, []).append(item_id)


def on_commit(key: str, callback: Callable[[list[int]], None], label: str) -> None:
    """After each commit, call callback with the ids noted under key (errors are logged, never raised)."""
    _callbacks[key] = (callback, label)


def _after_commit(session) -> None:
    for key, (callback, label) in list(_callbacks.items()):
        ids = session.info.pop(key, None)
        if not ids or not has_app_context():
            continue
        try:
            callback(sorted(set(ids)))
        except Exception:  # the rows are stored; the periodic retry sends them
            log.exception("could not queue the delivery of %s %s", label, ids)


def _after_rollback(session) -> None:
    for key in _callbacks:
        session.info.pop(key, None)


if not sa.event.contains(FlaskSession, "after_commit", _after_commit):
    sa.event.listen(FlaskSession, "after_commit", _after_commit)
    sa.event.listen(FlaskSession, "after_rollback", _after_rollback)
