"""WeChat Pay jobs: reconcile silent orders (every 5 minutes) and check the daily trade bill (10:30).

reconcile_pay_orders_job commits after each order: it calls WeChat once per order and must not keep
the bills of earlier orders locked while it waits for the next answer.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

from jobs import job, set_progress

log = logging.getLogger(__name__)


@job
def reconcile_pay_orders_job() -> dict[str, int]:
    """Query WeChat for open orders that got no notification, apply the paid ones, close the expired ones."""
    from app.extensions import db
    from app.services import audit, wechat_payments

    audit.set_actor(None, "job:reconcile_pay_orders")
    ids = wechat_payments.orders_to_reconcile()
    if not ids:
        return {}
    client = wechat_payments.pay_client()
    counts: dict[str, int] = {}
    for done, order_id in enumerate(ids, start=1):
        try:
            outcome = wechat_payments.reconcile_pay_order(order_id, client)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("reconciling pay order %s failed", order_id)
            outcome = "failed"
        counts[outcome] = counts.get(outcome, 0) + 1
        set_progress(done, len(ids), outcome)
    return counts


@job
def check_trade_bill_job(bill_date: str | None = None) -> dict[str, int]:
    """Download the trade bill of a day (default yesterday, Asia/Shanghai) and list mismatches for Finance."""
    from app.services import audit, wechat_payments
    from app.utils.dates import today_local

    audit.set_actor(None, "job:check_trade_bill")
    day = date.fromisoformat(bill_date) if bill_date else today_local() - timedelta(days=1)
    return wechat_payments.check_trade_bill(day)
