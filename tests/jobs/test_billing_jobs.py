"""The billing job: real Redis with a burst SimpleWorker when REDIS_URL is set, inline otherwise."""
from datetime import date

import pytest
import sqlalchemy as sa
from rq import SimpleWorker

from app.extensions import db
from app.models import Bill, BillingRun
from app.models.enums import RunStatus
from app.queues import get_queue, get_redis, is_embedded
from app.services import billing
from jobs.billing import enqueue_billing_run, job_status, run_billing_job
from tests.factories import add_reading

NOV = date(2026, 11, 1)


def work():
    """Run the queued billing jobs (a burst worker on real Redis; inline jobs already ran)."""
    if not is_embedded():
        SimpleWorker([get_queue("billing")], connection=get_redis()).work(burst=True)
    db.session.expire_all()


def request(market):
    run = billing.request_billing_run(market.market.id, NOV)
    db.session.commit()
    return run.id


def bill_count():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Bill))


def test_job_posts_the_run(market):
    add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    run_id = request(market)
    job = enqueue_billing_run(run_id)
    assert job.id == "billing-JJ-2026-11"
    assert job.origin == "billing"
    work()
    run = db.session.get(BillingRun, run_id)
    assert run.status == RunStatus.posted
    assert run.progress_done == run.progress_total == len(billing.POST_STEPS)
    assert run.bill_count == 4 == bill_count()
    assert job_status(job.id) == "finished"
    job.refresh()
    assert job.return_value()["new_bills"] == 4
    assert job.meta["done"] == job.meta["total"]


def test_enqueueing_twice_runs_once(market):
    run_id = request(market)
    first = enqueue_billing_run(run_id)
    second = enqueue_billing_run(run_id)
    assert first.id == second.id
    if not is_embedded():
        assert get_queue("billing").count == 1
    work()
    assert bill_count() == 4
    # Enqueueing a finished period again is allowed and bills nothing twice.
    enqueue_billing_run(request(market))
    work()
    assert bill_count() == 4
    assert "未重复生成账单" in db.session.get(BillingRun, run_id).report["message"]


def test_a_killed_job_is_rerun_to_the_same_result(market, monkeypatch):
    add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    run_id = request(market)

    def killed(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(billing.q, "insert_lines", killed)
    enqueue_billing_run(run_id)
    work()
    run = db.session.get(BillingRun, run_id)
    assert run.status == RunStatus.failed and "worker killed" in run.error
    assert bill_count() == 0
    monkeypatch.undo()
    enqueue_billing_run(request(market))
    work()
    run = db.session.get(BillingRun, run_id)
    assert run.status == RunStatus.posted and run.error is None
    assert sorted(db.session.scalars(sa.select(Bill.amount_fen))) == [77000, 77000, 77000, 95500]


def test_job_called_directly_commits_once(market):
    run_id = request(market)
    result = run_billing_job(run_id)
    db.session.expire_all()
    assert result["new_bills"] == 4
    assert db.session.get(BillingRun, run_id).status == RunStatus.posted


@pytest.mark.skipif("not __import__('os').environ.get('REDIS_URL')", reason="needs a real Redis")
def test_progress_is_visible_while_queued(market):
    run_id = request(market)
    enqueue_billing_run(run_id)
    assert job_status("billing-JJ-2026-11") == "queued"
    assert db.session.get(BillingRun, run_id).status == RunStatus.queued
    work()
    assert db.session.get(BillingRun, run_id).status == RunStatus.posted


def test_stale_previews_are_purged(market):
    from datetime import timedelta

    from app.models.bills import BillingStagedLine
    from app.utils.dates import now_utc
    from jobs.billing import purge_billing_previews_job

    billing.preview_billing(market.market.id, NOV)
    db.session.commit()
    assert purge_billing_previews_job() == 0
    db.session.execute(sa.update(BillingStagedLine).values(created_dt=now_utc() - timedelta(days=2)))
    db.session.commit()
    assert purge_billing_previews_job() == 8
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BillingStagedLine)) == 0
