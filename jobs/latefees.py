"""Late-fee jobs on the "billing" queue.

The daily entry (jobs/schedule.py, 01:00 Asia/Shanghai) enqueues one accrual job per market that
has a late-fee rule; each market's accrual is one transaction. A missed day is caught up by the
next run (the service accrues every day after the market's last accrued day), and running a day
again adds nothing, so a retried or duplicated job is harmless.
"""
from __future__ import annotations

import logging
from datetime import date

from jobs import job, set_progress

log = logging.getLogger(__name__)

QUEUE = "billing"
JOB_TIMEOUT = 3600


def _day(day_iso: str | None) -> date:
    from app.utils.dates import today_local

    return date.fromisoformat(day_iso) if day_iso else today_local()


@job
def accrue_late_fees_job(market_id: int, day_iso: str | None = None) -> dict:
    """Accrue one market's late fees through a day (today in Shanghai by default), catching up missed days."""
    from app.services import audit
    from app.services.latefees import accrue_late_fees

    day = _day(day_iso)
    audit.set_actor(None, "job:accrue-late-fees")
    result = accrue_late_fees(market_id, day)
    summary = {
        "market_id": market_id,
        "through": day.isoformat(),
        "from": result.first_day.isoformat() if result.first_day else None,
        "already_accrued": result.already_accrued,
        "rows": result.row_count,
        "amount_fen": result.amount_fen,
    }
    set_progress(1, 1, f"{summary['from'] or day_iso} .. {summary['through']}: {result.amount_fen} fen")
    log.info("late fees accrued: %s", summary)
    return summary


@job
def accrue_late_fees_daily_job(day_iso: str | None = None) -> list[str]:
    """Enqueue the day's late-fee accrual for every market that has a late-fee rule."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models.latefees import LateFeeRule
    from app.queues import get_queue

    day = _day(day_iso)
    market_ids = db.session.scalars(sa.select(LateFeeRule.market_id).distinct().order_by(LateFeeRule.market_id)).all()
    queue = get_queue(QUEUE)
    job_ids = []
    for market_id in market_ids:
        enqueued = queue.enqueue(accrue_late_fees_job, market_id, day.isoformat(),
                                 job_id=f"latefees-{market_id}-{day.isoformat()}", job_timeout=JOB_TIMEOUT)
        job_ids.append(enqueued.id)
    return job_ids
