"""Import jobs on the "imports" queue: meter readings and onboarding master data.

Each job takes a batch id, reads the uploaded bytes stored on the batch, calls the service and
commits once. While it runs, progress is written to job.meta and (PostgreSQL with a real worker)
to the batch row through a separate short connection, so the upload page can poll it.
"""
from __future__ import annotations

import io
import logging

import sqlalchemy as sa

from jobs import job, set_progress

log = logging.getLogger(__name__)

#: Upper bound for one import on a worker (a 200,000-row file takes well under a minute).
JOB_TIMEOUT = 3600


class BatchProgress:
    """Progress callback: job.meta always; the batch row too when a separate worker runs the job."""

    def __init__(self, batch_id):
        from app.extensions import db
        from app.queues import is_embedded

        self.batch_id = batch_id
        # SQLite allows one writer: a second connection would wait for the import's own lock.
        # Embedded mode runs the job inside the upload request, so nobody polls meanwhile.
        self.to_row = not is_embedded() and db.engine.dialect.name != "sqlite"

    def start(self):
        from app.utils.dates import now_utc

        self._write(status="running", started_dt=now_utc())

    def __call__(self, done, total, result):
        set_progress(done, total, f"rejected={result.rejected}")
        self._write(
            processed_rows=done, total_rows=total, inserted_count=result.inserted,
            updated_count=result.updated, unchanged_count=result.unchanged,
            rejected_count=result.rejected, flagged_count=result.flagged, rollover_count=result.rollover,
        )

    def _write(self, **values):
        if not self.to_row:
            return
        from app.extensions import db
        from app.models.readings import ImportBatch

        # Its own transaction: the import's transaction only commits at the end.
        with db.engine.begin() as conn:
            conn.execute(sa.update(ImportBatch.__table__).where(ImportBatch.__table__.c.id == self.batch_id)
                         .values(**values))


def _run_batch(batch_id, kind, service):
    """Load the batch, run the service on its stored file, record failure if it cannot finish."""
    from app.extensions import db
    from app.models.readings import ImportBatch, ImportStatus
    from app.services import audit
    from app.services.exceptions import DomainError
    from app.services.readings import fail_batch

    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.kind != kind or batch.status in (ImportStatus.done, ImportStatus.failed):
        return None
    audit.set_actor(batch.user_id, batch.username)
    progress = BatchProgress(batch_id)
    progress.start()
    try:
        result = service(batch, io.BytesIO(batch.content or b""), batch.filename, progress=progress)
    except DomainError as exc:
        db.session.rollback()
        fail_batch(db.session.get(ImportBatch, batch_id), exc.message)
        return {"status": "failed", "message": exc.message}
    except Exception:
        log.exception("import batch %s failed", batch_id)
        db.session.rollback()
        fail_batch(db.session.get(ImportBatch, batch_id), "导入时发生意外错误，请联系系统管理员（详见服务器日志）")
        db.session.commit()
        raise
    return {"status": "done", **result.counts()}


@job
def import_readings_job(batch_id: int):
    """Import the meter-readings file uploaded as this batch."""
    from app.models.readings import ImportKind
    from app.services.readings import import_meter_readings

    return _run_batch(batch_id, ImportKind.readings, import_meter_readings)


@job
def import_master_job(batch_id: int):
    """Import the onboarding workbook (units, merchants, leases, meters) uploaded as this batch."""
    from app.models.readings import ImportKind
    from app.services.master_import import import_master_data

    return _run_batch(batch_id, ImportKind.master, import_master_data)


def import_job_id(batch) -> str:
    """The RQ job id of a batch's import (set on the batch before it is enqueued)."""
    from app.models.readings import ImportKind

    return f"import-{ImportKind(batch.kind).value}-{batch.id}"


def enqueue_import(batch) -> None:
    """Put a committed batch's job on the "imports" queue (runs inline in embedded mode)."""
    from app.models.readings import ImportKind
    from app.queues import get_queue

    func = import_readings_job if ImportKind(batch.kind) == ImportKind.readings else import_master_job
    get_queue("imports").enqueue(func, batch.id, job_id=import_job_id(batch), job_timeout=JOB_TIMEOUT,
                                 result_ttl=86400, failure_ttl=7 * 86400)
