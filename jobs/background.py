"""Queue deliveries on a queue, or, in the embedded mode (no REDIS_URL), run them in a background thread.

A request that stored something to send does not wait for the sending: with Redis each id becomes a
job on the queue; without it a thread of the app process runs the job function for each id, in a
fresh app context (its own database session).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)

_threads: list[threading.Thread] = []
_threads_lock = threading.Lock()


def dispatch(queue_name: str, job_func: Callable[[int], object], ids: list[int], label: str,
             job_timeout: int = 120) -> None:
    """Queue job_func(id) for each id on queue_name (a background thread in the embedded mode)."""
    from flask import current_app

    from app.queues import get_queue, is_embedded

    if not ids:
        return
    if is_embedded():
        app = current_app._get_current_object()
        thread = threading.Thread(target=_run_locally, args=(app, job_func, list(ids), label),
                                  name=label.replace(" ", "-"), daemon=True)
        with _threads_lock:
            _threads[:] = [t for t in _threads if t.is_alive()]
            _threads.append(thread)
        thread.start()
        return
    queue = get_queue(queue_name)
    for item_id in ids:
        queue.enqueue(job_func, item_id, job_timeout=job_timeout, description=f"{label} {item_id}")


def _run_locally(app, job_func, ids: list[int], label: str) -> None:
    """Run the jobs in this process, in a fresh app context (own database session)."""
    with app.app_context():
        for item_id in ids:
            try:
                job_func(item_id)
            except Exception:
                log.exception("delivering %s %s failed", label, item_id)


def wait_for_local_deliveries(timeout: float = 10.0) -> None:
    """Wait for the embedded mode's background deliveries started so far (tests and CLI use it)."""
    with _threads_lock:
        pending = list(_threads)
    for thread in pending:
        thread.join(timeout)


def deliver_each(ids: list[int], deliver: Callable[[int], str], label: str, stop_outcomes: set[str]) -> dict[str, int]:
    """Deliver each id in turn, committing after each; stop early on an outcome that means "not now"
    (rate limit, outage). Returns how many ended with each outcome."""
    from app.extensions import db
    from jobs import set_progress

    counts: dict[str, int] = {}
    for done, item_id in enumerate(ids, start=1):
        try:
            outcome = deliver(item_id)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("delivering %s %s failed", label, item_id)
            outcome = "failed"
        counts[outcome] = counts.get(outcome, 0) + 1
        set_progress(done, len(ids), outcome)
        if outcome in stop_outcomes:
            break
    return counts
