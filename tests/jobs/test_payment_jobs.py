"""The WeChat Pay jobs run through the queue (inline on fakeredis, a burst worker with REDIS_URL)."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, Payment
from app.models.enums import BillStatus
from app.models.wechatpay import MismatchKind, PayOrder, PayOrderStatus, TradeBillMismatch
from app.queues import get_queue, is_embedded
from app.services import wechat_payments
from app.utils.dates import now_utc, today_local
from jobs.payments import check_trade_bill_job, reconcile_pay_orders_job
from tests.wechatpay_support import live_server, make_bill, wxpay  # noqa: F401


def _run(func, *args):
    from rq import SimpleWorker

    queue = get_queue("default")
    job = queue.enqueue(func, *args)
    if not is_embedded():
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    return job.return_value()


def test_reconcile_job_pays_silent_orders_and_closes_expired_ones(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    paid_bill, expired_bill, fresh_bill = make_bill(merchant, 1500), make_bill(merchant, 2500), make_bill(merchant, 99)
    paid, _ = wechat_payments.create_pay_order(merchant, "o-job", [paid_bill.id])
    expired, _ = wechat_payments.create_pay_order(merchant, "o-job", [expired_bill.id])
    fresh, _ = wechat_payments.create_pay_order(merchant, "o-job", [fresh_bill.id])
    db.session.commit()
    fake_wechat.pay(paid.out_trade_no, notify=False)  # the notification never arrives
    old = now_utc() - timedelta(minutes=40)
    db.session.execute(sa.update(PayOrder).where(PayOrder.id.in_([paid.id, expired.id])).values(created_dt=old))
    db.session.execute(sa.update(PayOrder).where(PayOrder.id == expired.id)
                       .values(expires_dt=now_utc() - timedelta(minutes=5)))
    db.session.commit()

    counts = _run(reconcile_pay_orders_job)

    assert counts == {"ok": 1, "closed": 1}
    db.session.expire_all()
    assert db.session.get(Bill, paid_bill.id).status == BillStatus.paid
    assert db.session.get(PayOrder, expired.id).status == PayOrderStatus.closed
    assert db.session.get(PayOrder, fresh.id).status == PayOrderStatus.open
    assert fake_wechat.order(expired.out_trade_no)["trade_state"] == "CLOSED"
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1


def test_trade_bill_job_lists_mismatches(market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 4321)
    lost, _ = wechat_payments.create_pay_order(merchant, "o-job", [bill.id])
    db.session.commit()
    fake_wechat.pay(lost.out_trade_no, notify=False)

    counts = _run(check_trade_bill_job, today_local().isoformat())

    assert counts["new_mismatches"] >= 1
    db.session.expire_all()
    row = db.session.scalar(sa.select(TradeBillMismatch).where(TradeBillMismatch.out_trade_no == lost.out_trade_no))
    assert row.kind == MismatchKind.missing_here and row.wechat_amount_fen == 4321


def test_schedule_lists_the_payment_jobs():
    from jobs.schedule import SCHEDULE

    entries = {path: expression for path, _queue, expression, _ in SCHEDULE}
    assert entries["jobs.payments.reconcile_pay_orders_job"] == "*/5 * * * *"
    assert entries["jobs.payments.check_trade_bill_job"] == "30 10 * * *"


def test_cli_commands(app, market, fake_wechat, wxpay):
    merchant = market.merchants_a[0]
    bill = make_bill(merchant, 1234)
    lost, _ = wechat_payments.create_pay_order(merchant, "o-cli", [bill.id])
    db.session.commit()
    fake_wechat.pay(lost.out_trade_no, notify=False)
    runner = app.test_cli_runner()

    out = runner.invoke(args=["market", "check-trade-bill", "--date", today_local().isoformat()])
    assert out.exit_code == 0, out.output
    assert "交易账单：微信" in out.output  # the fake's bill also holds other tests' orders of today
    assert db.session.scalar(sa.select(TradeBillMismatch).where(
        TradeBillMismatch.out_trade_no == lost.out_trade_no)).kind == MismatchKind.missing_here

    db.session.execute(sa.update(PayOrder).where(PayOrder.id == lost.id)
                       .values(created_dt=now_utc() - timedelta(minutes=10)))
    db.session.commit()
    out = runner.invoke(args=["market", "reconcile-payments"])
    assert out.exit_code == 0, out.output
    assert "ok=1" in out.output
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == BillStatus.paid
