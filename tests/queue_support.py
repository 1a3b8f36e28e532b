"""Running the "notifications" queue in tests: inline on fakeredis, a burst SimpleWorker on real Redis."""
from __future__ import annotations

from rq import SimpleWorker

from app.extensions import db
from app.queues import get_queue, get_redis, is_embedded


def deliver_queued() -> None:
    """Run the deliveries queued after the commits so far (alerts, merchant notifications)."""
    from jobs.background import wait_for_local_deliveries

    if is_embedded():
        wait_for_local_deliveries()
    else:
        SimpleWorker([get_queue("notifications")], connection=get_redis()).work(burst=True)
    db.session.expire_all()


def run_notifications_job(func, *args):
    """Enqueue func(*args) on the notifications queue, run it as a worker would, and return its result."""
    queue = get_queue("notifications")
    job = queue.enqueue(func, *args)
    if not is_embedded():
        SimpleWorker([queue], connection=get_redis()).work(burst=True)
    job.refresh()
    return job.return_value()
