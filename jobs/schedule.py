"""Every periodic job, declared in one place.

Run by the scheduler process: `TZ=Asia/Shanghai rq cron jobs.schedule --url $REDIS_URL`.
Each entry: (dotted function path, queue, cron expression in Asia/Shanghai, description).
"""
from __future__ import annotations

from rq import cron
from rq.utils import import_attribute

SCHEDULE: list[tuple[str, str, str, str]] = [
    ("jobs.payments.reconcile_pay_orders_job", "default", "*/5 * * * *",
     "WeChat Pay: query silent orders, close expired ones"),
    ("jobs.payments.check_trade_bill_job", "default", "30 10 * * *",
     "WeChat Pay: yesterday's trade bill against our payments"),
    ("jobs.alerts.retry_finance_alerts_job", "notifications", "*/3 * * * *",
     "Finance alerts: send the ones still pending (backoff per alert, capped attempts)"),
    ("jobs.notifications.retry_merchant_notifications_job", "notifications", "*/3 * * * *",
     "Merchant notifications: send the WeChat messages still pending (backoff, at most 6 attempts)"),
    ("jobs.latefees.accrue_late_fees_daily_job", "billing", "0 1 * * *",
     "Late fees: accrue today's late fees of every market (catches up missed days)"),
    ("jobs.billing.purge_billing_previews_job", "billing", "30 3 * * *",
     "Billing: delete previews older than a day that were never posted"),
    ("jobs.tickets.close_resolved_tickets_job", "default", "30 2 * * *",
     "Tickets: close the ones resolved more than 7 days ago that the merchant did not confirm"),
]

for _path, _queue, _expression, _description in SCHEDULE:
    cron.register(import_attribute(_path), _queue, cron=_expression, name=_path)
