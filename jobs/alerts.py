"""Finance alert delivery on the "notifications" queue.

deliver_alert_job is queued after the commit that raised the alert (never inside the request that
handled the cause); retry_finance_alerts_job (jobs/schedule.py, every 3 minutes) sends what is still
pending once its backoff has passed. Sending twice is impossible: the service locks the alert and
skips one already sent. In the embedded mode (no REDIS_URL, jobs run in-process) the delivery runs in
a background thread instead, so that the request that raised the alert does not wait for it.
"""
from __future__ import annotations

import logging
import threading

from jobs import job, set_progress

log = logging.getLogger(__name__)

QUEUE = "notifications"
JOB_TIMEOUT = 120
#: Outcomes after which the rest of a retry batch waits for the next run (the robot is down or throttling).
STOP_OUTCOMES = {"rate_limited", "unavailable", "not_configured"}

_threads: list[threading.Thread] = []
_threads_lock = threading.Lock()


@job
def deliver_alert_job(alert_id: int) -> str:
    """Send one finance alert on its channels and record the outcome."""
    from app.services import alerts, audit

    audit.set_actor(None, "job:deliver_finance_alert")
    return alerts.deliver_alert(alert_id)


@job
def retry_finance_alerts_job() -> dict[str, int]:
    """Send the finance alerts still pending whose backoff has passed (stops early on a rate limit or outage)."""
    from app.extensions import db
    from app.services import alerts, audit

    audit.set_actor(None, "job:retry_finance_alerts")
    if not alerts.channels_configured():
        return {}
    ids = alerts.pending_alerts()
    counts: dict[str, int] = {}
    for done, alert_id in enumerate(ids, start=1):
        try:
            outcome = alerts.deliver_alert(alert_id)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("delivering finance alert %s failed", alert_id)
            outcome = "failed"
        counts[outcome] = counts.get(outcome, 0) + 1
        set_progress(done, len(ids), outcome)
        if outcome in STOP_OUTCOMES:
            break
    return counts


def enqueue_deliveries(alert_ids: list[int]) -> None:
    """Queue the delivery of freshly committed alerts (a background thread in the embedded mode)."""
    from flask import current_app

    from app.queues import get_queue, is_embedded
    from app.services import alerts

    if not alert_ids or not alerts.channels_configured():
        return  # nothing to send on; the retry job picks them up once a channel is configured
    if is_embedded():
        app = current_app._get_current_object()
        thread = threading.Thread(target=_deliver_locally, args=(app, list(alert_ids)),
                                  name="finance-alerts", daemon=True)
        with _threads_lock:
            _threads[:] = [t for t in _threads if t.is_alive()]
            _threads.append(thread)
        thread.start()
        return
    queue = get_queue(QUEUE)
    for alert_id in alert_ids:
        queue.enqueue(deliver_alert_job, alert_id, job_timeout=JOB_TIMEOUT, description=f"finance alert {alert_id}")


def _deliver_locally(app, alert_ids: list[int]) -> None:
    """Deliver alerts in this process, in a fresh app context (own database session)."""
    with app.app_context():
        for alert_id in alert_ids:
            try:
                deliver_alert_job(alert_id)
            except Exception:
                log.exception("delivering finance alert %s failed", alert_id)


def wait_for_local_deliveries(timeout: float = 10.0) -> None:
    """Wait for the embedded mode's background deliveries started so far (tests and CLI use it)."""
    with _threads_lock:
        pending = list(_threads)
    for thread in pending:
        thread.join(timeout)
