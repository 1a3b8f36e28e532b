"""Ticket jobs on the "default" queue.

The daily entry (jobs/schedule.py, 02:30 Asia/Shanghai) closes tickets resolved more than 7 days
ago that the merchant neither confirmed nor reopened. Running it twice closes nothing more.
"""
from __future__ import annotations

import logging

from jobs import job, set_progress

log = logging.getLogger(__name__)

QUEUE = "default"


@job
def close_resolved_tickets_job(now_iso: str | None = None) -> int:
    """Close the tickets resolved more than 7 days ago (at now_iso, UTC ISO 8601, default now)."""
    from datetime import datetime, timezone

    from app.services import audit
    from app.services.tickets import close_resolved_tickets
    from app.utils.dates import now_utc

    now = datetime.fromisoformat(now_iso) if now_iso else now_utc()
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    audit.set_actor(None, "job:close-resolved-tickets")
    closed = close_resolved_tickets(now)
    set_progress(1, 1, f"{closed} tickets closed")
    log.info("resolved tickets closed: %s", closed)
    return closed
