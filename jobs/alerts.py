"""Finance alert delivery on the "notifications" queue.

deliver_alert_job is queued after the commit that raised the alert (never inside the request that
handled the cause); retry_finance_alerts_job (jobs/schedule.py, every 3 minutes) sends what is still
pending once its backoff has passed. Sending twice is impossible: the service locks the alert and
skips one already sent. In the embedded mode (no REDIS_URL, jobs run in-process) the delivery runs in
a background thread instead, so that the request that raised the alert does not wait for it.
"""
from __future__ import annotations

from jobs import background, job

QUEUE = "notifications"
JOB_TIMEOUT = 120
#: Outcomes after which the rest of a retry batch waits for the next run (the robot is down or throttling).
STOP_OUTCOMES = {"rate_limited", "unavailable", "not_configured"}


@job
def deliver_alert_job(alert_id: int) -> str:
    """Send one finance alert on its channels and record the outcome."""
    from app.services import alerts, audit

    audit.set_actor(None, "job:deliver_finance_alert")
    return alerts.deliver_alert(alert_id)


@job
def retry_finance_alerts_job() -> dict[str, int]:
    """Send the finance alerts still pending whose backoff has passed (stops early on a rate limit or outage)."""
    from app.services import alerts, audit

    audit.set_actor(None, "job:retry_finance_alerts")
    if not alerts.channels_configured():
        return {}
    return background.deliver_each(alerts.pending_alerts(), alerts.deliver_alert, "finance alert", STOP_OUTCOMES)


def enqueue_deliveries(alert_ids: list[int]) -> None:
    """Queue the delivery of freshly committed alerts (a background thread in the embedded mode)."""
    from app.services import alerts

    if not alert_ids or not alerts.channels_configured():
        return  # nothing to send on; the retry job picks them up once a channel is configured
    background.dispatch(QUEUE, deliver_alert_job, list(alert_ids), "finance alert", job_timeout=JOB_TIMEOUT)


#: Wait for the embedded mode's background deliveries started so far (tests and CLI use it).
wait_for_local_deliveries = background.wait_for_local_deliveries
