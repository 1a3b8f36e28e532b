"""Benchmark: how fast the app answers WeChat Pay notifications (WeChat wants an answer within 5 s).

    python bench/bench_notify.py [--stalls 20000] [--payments 300] [--concurrency 8] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_lead_bench_notify]

1. Builds (once) a demo market on PostgreSQL with three months of history (seed_demo: readings,
   posted billing runs, offline payments, late fees), so the bill and payment tables hold tens of
   thousands of rows.
2. Serves the app on a loopback port (werkzeug, threaded) and starts the fake WeChat server, which
   signs and encrypts notifications exactly as WeChat Pay v3 does.
3. Opens one JSAPI order per unpaid bill (through the service, against the fake) and then has the
   fake pay each one, timing each notification POST from the fake's side (sign + encrypt + HTTP +
   the app's verification, decryption, checks, record_payment and commit):
   - first delivery of --payments payments, one after another;
   - the same notifications replayed (duplicates: nothing changes);
   - --concurrency deliveries of one notification at the same moment (one payment recorded);
   - notifications 1 fen short (suspicious: stored, a finance alert raised, bills stay unpaid).
Prints median, 95th percentile and maximum per kind, and checks the payments recorded.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DEMO_PASSWORD", "bench-password-1")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_lead_bench_notify"
NOTIFY_PATH = "/api/mp/v1/wechatpay/notify"


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    return (f"n={len(ordered)} median {statistics.median(ordered) * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")


def _timed_pay(fake, out_trade_no: str, **options) -> tuple[float, list[int]]:
    start = time.perf_counter()
    result = fake.pay(out_trade_no, **options)
    seconds = time.perf_counter() - start
    return seconds, [d["status_code"] for d in result["deliveries"]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--stalls", type=int, default=20_000)
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ["DATABASE_URL"] = args.database_url

    import sqlalchemy as sa
    from werkzeug.serving import make_server

    from app import create_app
    from app.extensions import db
    from app.integrations.fake_wechat import FakeWeChat
    from app.models import Bill, Merchant
    from app.models.enums import BillStatus
    from app.models.payments import Payment
    from app.services import wechat_payments
    from app.services.demo import seed_demo

    app = create_app("development")
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            raise SystemExit("bench/bench_notify.py needs a PostgreSQL database")
        db.create_all()
        start = time.perf_counter()
        seed = seed_demo(stalls=args.stalls, history_months=3)
        db.session.commit()
        print(f"market: {'built' if seed['created'] else 'already there'} ({time.perf_counter() - start:.1f} s)")
        bills_total = db.session.scalar(sa.select(sa.func.count(Bill.id)))
        payments_total = db.session.scalar(sa.select(sa.func.count(Payment.id)))
        print(f"tables: {bills_total} bills, {payments_total} payments")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    fake = FakeWeChat(Path(tempfile.mkdtemp(prefix="bench_notify_"))).start()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    app.config.update(fake.settings)
    app.config.update(WECHATPAY_NOTIFY_URL=base + NOTIFY_PATH, FINANCE_ALERT_WEBHOOK_URL="")
    app.extensions.pop("wechatpay", None)

    with app.app_context():
        # One unpaid bill per merchant, newest first: as many orders as --payments + the extra kinds.
        wanted = args.payments + 2 + 20
        rows = db.session.execute(
            sa.select(sa.func.max(Bill.id), Bill.merchant_id).where(Bill.status == BillStatus.issued)
            .group_by(Bill.merchant_id).order_by(Bill.merchant_id).limit(wanted)
        ).all()
        if len(rows) < wanted:
            raise SystemExit(f"only {len(rows)} merchants with an unpaid bill; raise --stalls")
        orders = []
        start = time.perf_counter()
        for bill_id, merchant_id in rows:
            merchant = db.session.get(Merchant, merchant_id)
            order, _ = wechat_payments.create_pay_order(merchant, f"o-bench-{merchant_id}", [bill_id])
            db.session.commit()
            orders.append(order.out_trade_no)
        print(f"orders: {len(orders)} opened at the fake in {time.perf_counter() - start:.1f} s")
        before = db.session.scalar(sa.select(sa.func.count(Payment.id)))

    paid_orders, concurrent_order, short_orders = orders[:args.payments], orders[args.payments], orders[-20:]
    first, replay, statuses = [], [], []
    for no in paid_orders:
        seconds, codes = _timed_pay(fake, no)
        first.append(seconds)
        statuses += codes
    for no in paid_orders[:100]:
        seconds, codes = _timed_pay(fake, no)  # WeChat's retry of the same notification
        replay.append(seconds)
        statuses += codes
    fake.pay(concurrent_order, notify=False)
    with ThreadPoolExecutor(args.concurrency) as pool:
        concurrent = list(pool.map(lambda _: _timed_pay(fake, concurrent_order), range(args.concurrency)))
    short = [_timed_pay(fake, no, tamper="amount_short") for no in short_orders]
    server.shutdown()
    fake.stop()

    with app.app_context():
        after = db.session.scalar(sa.select(sa.func.count(Payment.id)))
    print(f"first delivery: {_percentiles(first)}")
    print(f"replayed (duplicate): {_percentiles(replay)}")
    print(f"{args.concurrency} at once: {_percentiles([s for s, _ in concurrent])}")
    print(f"1 fen short (suspicious): {_percentiles([s for s, _ in short])}")
    all_codes = statuses + [c for _, codes in concurrent for c in codes] + [c for _, codes in short for c in codes]
    print(f"answers: {sorted(set(all_codes))}; payments recorded: {after - before} "
          f"(expected {args.payments + 1})")
    if after - before != args.payments + 1 or set(all_codes) != {204}:
        raise SystemExit("unexpected answers or payment count")


if __name__ == "__main__":
    main()
