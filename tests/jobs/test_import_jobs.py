"""Import jobs run for real: on Redis with a burst worker when REDIS_URL is set, inline otherwise."""

import pytest
import sqlalchemy as sa
from rq import SimpleWorker
from rq.job import Job

from app.extensions import db
from app.models.readings import ImportBatch, ImportKind, ImportStatus
from app.queues import get_queue, get_redis, is_embedded
from jobs.imports import BatchProgress, enqueue_import, import_job_id
from tests.fixtures.imports import csv_bytes, reading_count


def _batch(market, content, filename="r.csv", kind=ImportKind.readings):
    from app.services.readings import create_import_batch, estimate_rows

    batch = create_import_batch(market.market.id, kind, filename, content=content, source="upload",
                                total_rows=estimate_rows(content, filename))
    batch.job_id = import_job_id(batch)
    db.session.commit()
    return batch


def _run(batch):
    """Enqueue like the upload page does; with Redis, work the queue with a burst worker."""
    enqueue_import(batch)
    if not is_embedded():
        queue = get_queue("imports")
        assert queue.count == 1  # really queued, not run inline
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.expire_all()
    return db.session.get(ImportBatch, batch.id)


def test_readings_job_imports_the_stored_file(market):
    content = csv_bytes([["EA001", "2026-03", "10", "", "", ""], ["EZ9", "2026-03", "1", "", "", ""]], encoding="gbk")
    batch = _batch(market, content)
    assert batch.total_rows == 2
    done = _run(batch)
    assert done.status == ImportStatus.done
    assert (done.processed_rows, done.inserted_count, done.rejected_count) == (2, 1, 1)
    assert done.started_dt is not None and done.finished_dt >= done.started_dt and done.content is None
    assert reading_count() == 1
    job = Job.fetch(batch.job_id, connection=get_redis())
    assert job.get_status() == "finished"
    assert job.return_value()["inserted"] == 1
    if not is_embedded():
        assert job.get_meta()["done"] == 2  # progress recorded by the worker


def test_unreadable_file_fails_the_batch_with_the_reason(market):
    done = _run(_batch(market, b"a,b\n1,2\n"))
    assert done.status == ImportStatus.failed and done.message.startswith("缺少必需的列")
    assert reading_count() == 0


def test_unexpected_error_fails_the_batch_and_the_job(market, monkeypatch):
    import app.services.readings as readings

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(readings, "import_meter_readings", boom)
    batch = _batch(market, csv_bytes([["EA001", "2026-03", "10", "", "", ""]]))
    done = _run(batch)
    assert done.status == ImportStatus.failed and "意外错误" in done.message
    assert "disk on fire" not in done.message
    assert Job.fetch(batch.job_id, connection=get_redis()).get_status() == "failed"


def test_a_finished_batch_is_not_imported_twice(market):
    batch = _batch(market, csv_bytes([["EA001", "2026-03", "10", "", "", ""]]))
    _run(batch)
    from jobs.imports import import_readings_job

    assert import_readings_job(batch.id) is None
    assert db.session.get(ImportBatch, batch.id).inserted_count == 1


def test_status_endpoint_reports_progress_of_a_running_job(login_as, market):
    """While a worker runs, the page polls counts from the batch row and job.meta."""
    batch = _batch(market, csv_bytes([["EA001", "2026-03", "10", "", "", ""]] * 3))
    batch.status = ImportStatus.running
    batch.processed_rows, batch.inserted_count, batch.rejected_count = 1, 1, 0
    db.session.commit()
    job = Job.create(func=print, connection=get_redis(), id=batch.job_id)
    job.meta.update({"done": 2, "total": 3})
    job.save()
    data = login_as("clerk").get(f"/imports/readings/batch/{batch.id}/status").get_json()
    assert data["finished"] is False and data["status"] == "running"
    assert (data["processed"], data["total"], data["percent"], data["inserted"]) == (2, 3, 66, 1)
    assert data["error_files"] == {}


def test_progress_goes_to_the_batch_row_through_its_own_connection(app, market):
    """With a worker on PostgreSQL the batch row shows progress while the import's transaction is open."""
    if is_embedded() or db.engine.dialect.name == "sqlite":
        pytest.skip("progress rows are written only by real workers on PostgreSQL")
    from app.services.readings import ImportResult

    batch = _batch(market, csv_bytes([["EA001", "2026-03", "10", "", "", ""]]))
    progress = BatchProgress(batch.id)
    progress.start()
    result = ImportResult(processed=5000, inserted=4990, rejected=10)
    progress(5000, 200000, result)
    with db.engine.connect() as other:
        row = other.execute(sa.select(ImportBatch.__table__).where(ImportBatch.__table__.c.id == batch.id)).one()
    assert (row.status, row.processed_rows, row.total_rows, row.rejected_count) == ("running", 5000, 200000, 10)


def test_master_job_imports_a_workbook(market):
    from tests.services.test_master_import import workbook

    batch = _batch(market, workbook(), "onboarding.xlsx", kind=ImportKind.master)
    done = _run(batch)
    assert done.status == ImportStatus.done, done.message
    assert done.inserted_count > 0 and done.summary["摊位"]["inserted"] == 3
