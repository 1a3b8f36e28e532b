"""The daily late-fee accrual runs through the queue (inline on fakeredis, a burst worker with
REDIS_URL) and by hand with `flask market accrue-late-fees`."""
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill
from app.models.latefees import LateFeeAccrual, LateFeeRun
from app.queues import get_queue, is_embedded
from app.services.latefees import create_rule
from jobs.latefees import QUEUE, accrue_late_fees_daily_job
from tests.factories import make_bill


def _run(func, *args):
    from rq import SimpleWorker

    queue = get_queue(QUEUE)
    job = queue.enqueue(func, *args)
    if not is_embedded():
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    return job


@pytest.fixture
def overdue(market):
    create_rule(market.market.id, date(2026, 1, 1), "0.0005", grace_days=5, cap_percent=Decimal(10))
    bill = make_bill(market.leases[0], amount_fen=100000, due_date=date(2026, 11, 15))
    db.session.commit()
    return bill


def _fee(bill):
    db.session.expire_all()
    return db.session.get(Bill, bill.id).late_fee_fen


def test_daily_job_accrues_every_market_and_is_harmless_twice(overdue):
    job = _run(accrue_late_fees_daily_job, "2026-11-22")
    assert job.get_status() == "finished"
    assert job.return_value() == [f"latefees-{overdue.market_id}-2026-11-22"]
    if not is_embedded():  # the per-market job is queued behind the daily one
        from rq import SimpleWorker

        SimpleWorker([get_queue(QUEUE)], connection=get_queue(QUEUE).connection).work(burst=True)
    assert _fee(overdue) == 350  # 7 days (11-16 .. 11-22) x 50 fen
    rows = db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id)))
    _run(accrue_late_fees_daily_job, "2026-11-22")
    if not is_embedded():
        from rq import SimpleWorker

        SimpleWorker([get_queue(QUEUE)], connection=get_queue(QUEUE).connection).work(burst=True)
    assert _fee(overdue) == 350
    assert db.session.scalar(sa.select(sa.func.count(LateFeeAccrual.id))) == rows


def test_schedule_runs_the_daily_accrual_at_one(app):
    from jobs.schedule import SCHEDULE

    entries = {path: (queue, cron) for path, queue, cron, _ in SCHEDULE}
    assert entries["jobs.latefees.accrue_late_fees_daily_job"] == ("billing", "0 1 * * *")


def test_cli_preview_then_accrue(app, overdue):
    runner = app.test_cli_runner()
    preview = runner.invoke(args=["market", "accrue-late-fees", "--market", "JJ", "--date", "2026-11-22", "--preview"])
    assert preview.exit_code == 0, preview.output
    assert "预览" in preview.output and "¥3.50" in preview.output and overdue.number in preview.output
    assert db.session.scalar(sa.select(sa.func.count(LateFeeRun.id))) == 0
    done = runner.invoke(args=["market", "accrue-late-fees", "--market", "JJ", "--date", "2026-11-22"])
    assert done.exit_code == 0, done.output
    assert "2026-11-16 至 2026-11-22" in done.output and "¥3.50" in done.output
    assert _fee(overdue) == 350
    again = runner.invoke(args=["market", "accrue-late-fees", "--market", "JJ", "--date", "2026-11-22"])
    assert "未重复计提" in again.output
    assert _fee(overdue) == 350
    bad = runner.invoke(args=["market", "accrue-late-fees", "--market", "NOPE", "--date", "2026-11-22"])
    assert bad.exit_code != 0
    future = runner.invoke(args=["market", "accrue-late-fees", "--market", "JJ", "--date", "2099-01-01"])
    assert future.exit_code != 0 and "未来" in future.output
