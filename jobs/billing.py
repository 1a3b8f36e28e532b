"""Billing jobs on the "billing" queue: post a market's run for a period.

The job id is billing-<market>-<YYYY-MM>: enqueueing a period that is already queued or
running returns the existing job instead of starting a second one, and the posting itself
locks the market (a second posting waits, then finds nothing left to bill). A killed job
leaves nothing behind (the posting is one transaction): enqueue it again.
"""
from __future__ import annotations

import logging

import sqlalchemy as sa

from jobs import job, set_progress

log = logging.getLogger(__name__)

QUEUE = "billing"
#: Upper bound for one posting on a worker (100,000 units take well under a minute).
JOB_TIMEOUT = 3600
ACTIVE_STATUSES = {"queued", "started", "deferred", "scheduled"}


class RunProgress:
    """Progress callback: job.meta always; the run row too when a separate worker runs the job."""

    def __init__(self, run_id):
        from app.extensions import db
        from app.queues import is_embedded

        self.run_id = run_id
        # SQLite allows one writer, and embedded mode runs the job inside the request: nobody polls.
        self.to_row = not is_embedded() and db.engine.dialect.name != "sqlite"

    def __call__(self, done, total, message="", status=None):
        set_progress(done, total, message)
        if not self.to_row:
            return
        from app.extensions import db
        from app.models import BillingRun
        from app.utils.dates import now_utc

        values = {"progress_done": done, "progress_total": total}
        if status is not None:
            values.update(status=status.value, started_dt=now_utc())
        # Its own short transaction: the posting's transaction only commits at the end.
        table = BillingRun.__table__
        with db.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == self.run_id).values(**values))


@job
def run_billing_job(run_id: int):
    """Post a billing run (all bills of the period or none) and record its outcome on the run."""
    from app.extensions import db
    from app.models import BillingRun
    from app.services import audit, billing
    from app.services.exceptions import DomainError

    run = db.session.get(BillingRun, run_id)
    if run is None:
        return None
    audit.set_actor(run.created_by_id, run.created_by.username if run.created_by else "billing-job")
    try:
        result = billing.post_billing_run(run_id, progress=RunProgress(run_id))
    except DomainError as exc:
        db.session.rollback()
        billing.mark_run_failed(run_id, exc.message)
        return {"status": "failed", "message": exc.message}
    except Exception as exc:
        log.exception("billing run %s failed", run_id)
        db.session.rollback()
        billing.mark_run_failed(run_id, f"出账失败，未生成任何账单：{exc}")
        db.session.commit()
        raise
    return result.as_dict()


@job
def purge_billing_previews_job():
    """Delete billing previews older than a day (the staging rows of previews never posted)."""
    from app.services import billing

    return billing.purge_stale_previews()


def enqueue_billing_run(run_id: int):
    """Enqueue the run's job under its unique id; an already queued or running job is returned as is."""
    from rq.exceptions import DuplicateJobError
    from rq.job import Job
    from rq.exceptions import NoSuchJobError

    from app.extensions import db
    from app.models import BillingRun
    from app.queues import get_queue

    run = db.session.get(BillingRun, run_id)
    queue = get_queue(QUEUE)
    job_id = run.job_id
    try:
        existing = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        existing = None
    if existing is not None:
        if _status_value(existing) in ACTIVE_STATUSES and queue.is_async:
            return existing
        existing.delete()
    try:
        return queue.enqueue(
            run_billing_job, run_id, job_id=job_id, job_timeout=JOB_TIMEOUT, result_ttl=86400,
            failure_ttl=7 * 86400, description=f"出账 {job_id}", unique=queue.is_async,
        )
    except DuplicateJobError:
        return Job.fetch(job_id, connection=queue.connection)


def job_status(job_id: str) -> str | None:
    """The RQ status of a job id (None when unknown)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from app.queues import get_queue

    try:
        return _status_value(Job.fetch(job_id, connection=get_queue(QUEUE).connection))
    except NoSuchJobError:
        return None


def _status_value(rq_job) -> str | None:
    status = rq_job.get_status(refresh=True)
    return getattr(status, "value", status)
