"""Merchant notification delivery on the "notifications" queue.

deliver_merchant_notification_job is queued after the commit that stored the notification (never
inside the ticket action); retry_merchant_notifications_job (jobs/schedule.py, every 3 minutes) sends
what is still pending once its backoff has passed. Sending twice is impossible: the service locks the
row and skips one already sent. In the embedded mode (no REDIS_URL) the delivery runs in a background
thread, so the request that stored the notification does not wait for WeChat.
"""
from __future__ import annotations

from jobs import background, job

QUEUE = "notifications"
JOB_TIMEOUT = 120
#: Outcomes after which the rest of a retry batch waits for the next run (WeChat down or throttling).
STOP_OUTCOMES = {"rate_limited", "unavailable"}


@job
def deliver_merchant_notification_job(notification_id: int) -> str:
    """Send one merchant notification and record the outcome."""
    from app.services import audit, notifications

    audit.set_actor(None, "job:deliver_merchant_notification")
    return notifications.deliver_notification(notification_id)


@job
def retry_merchant_notifications_job() -> dict[str, int]:
    """Send the merchant notifications still pending whose backoff has passed (stops early on an outage)."""
    from app.services import audit, notifications

    audit.set_actor(None, "job:retry_merchant_notifications")
    return background.deliver_each(notifications.pending_notifications(), notifications.deliver_notification,
                                   "merchant notification", STOP_OUTCOMES)


def enqueue_deliveries(notification_ids: list[int]) -> None:
    """Queue the delivery of freshly committed notifications (a background thread in the embedded mode)."""
    background.dispatch(QUEUE, deliver_merchant_notification_job, list(notification_ids),
                        "merchant notification", job_timeout=JOB_TIMEOUT)


#: Wait for the embedded mode's background deliveries started so far (tests and CLI use it).
wait_for_local_deliveries = background.wait_for_local_deliveries
