"""Benchmark: one day's late-fee accrual over 1,000,000 open overdue bills, against hand-written SQL.

    python bench/bench_late_fees.py [--bills 1000000] [--lines-per-bill 1] [--rounds 3] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_h6_bench]

1. Builds (once; --rebuild to start again) in the bench database, with INSERT ... SELECT over
   generate_series: one market, 4 zones, bills/4 merchants and leases, --bills open overdue bills
   (4 periods per lease, due 2026-08-15 .. 2026-11-15, so the newest are still in their grace
   period) with --lines-per-bill lines each (the bill amount is the sum of its lines), 2% of the
   bills partially paid before the day and 0.5% paid during the day (payments + allocations), a
   market rule (万分之五, 5 grace days, cap 10%) and 1% of the leases with their own override, and
   three days of accrual history (2026-11-17 .. 2026-11-19) for every bill: the steady state the
   daily job meets.
2. Times the accrual of 2026-11-20, each run in a fresh child process inside a transaction that
   is rolled back (VACUUM ANALYZE between runs), alternating:
   - service: app.services.latefees.accrue_late_fees(market, day) (rule lookups, the
     INSERT ... SELECT, the day's summary, the UPDATE of bills.late_fee_fen, run row, audit);
   - baseline: the same INSERT ... SELECT and UPDATE written by hand as two SQL statements.
   Both must write the same rows and the same total.
Prints the best and median time of each, the ratio, and each child's peak memory
(resource.getrusage ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_h6_bench"
DAY = date(2026, 11, 20)
HISTORY = [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)]
MARKET_ID = 1
MARKET_RULE_ID = 1


def _app(url):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("MARKET_ENV", "development")
    from app import create_app

    app = create_app("development")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    return app


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- preparation --------------------------------------------------------------------------------

BUILD_SQL = """
INSERT INTO markets (id, code, name, kind, due_days, created_dt, updated_dt)
VALUES (1, 'BENCH', '基准市场', 'market', 15, now(), now());
INSERT INTO zones (id, market_id, code, name, plan_width, plan_height, created_dt, updated_dt)
SELECT z, 1, 'Z' || z, z || '区', 100, 60, now(), now() FROM generate_series(1, 4) z;
INSERT INTO merchants (id, market_id, code, name, zone_id, notify_wechat, notify_sms, notify_bill, notify_overdue,
                       notify_ticket, created_dt, updated_dt)
SELECT m, 1, 'M' || m, '商户' || m, 1 + m % 4, true, true, true, true, true, now(), now()
FROM generate_series(1, :leases) m;
INSERT INTO leases (id, market_id, code, merchant_id, zone_id, start_date, end_date, deposit_fen, billing_cycle,
                    status, created_dt, updated_dt)
SELECT m, 1, 'L' || m, m, 1 + m % 4, DATE '2026-01-01', DATE '2027-12-31', 0, 'monthly', 'active', now(), now()
FROM generate_series(1, :leases) m;
-- bill b: lease 1 + (b-1) % leases, period 2026-07 + (b-1) / leases months, due the 15th of the next month
INSERT INTO bills (id, market_id, number, kind, status, merchant_id, lease_id, zone_id, period, issue_date, due_date,
                   amount_fen, paid_fen, late_fee_fen, created_dt, updated_dt)
SELECT b, 1, 'B' || b, 'regular', 'issued', l, l, 1 + l % 4,
       (DATE '2026-07-01' + make_interval(months => p))::date,
       (DATE '2026-08-01' + make_interval(months => p))::date,
       (DATE '2026-08-15' + make_interval(months => p))::date,
       (SELECT sum(1000 + (b::bigint * 7919 + k * 104729) % 60000) FROM generate_series(1, :lines) k),
       0, 0, now(), now()
FROM (SELECT b, 1 + (b - 1) % :leases AS l, (b - 1) / :leases AS p FROM generate_series(1, :bills) b) s;
INSERT INTO bill_lines (market_id, bill_id, description, quantity, amount_fen)
SELECT 1, b, '费用' || k, 1, 1000 + (b::bigint * 7919 + k * 104729) % 60000
FROM generate_series(1, :bills) b, generate_series(1, :lines) k;
-- 2% partially paid before the day, 0.5% paying during the day (10:00 Shanghai)
INSERT INTO payments (id, market_id, merchant_id, zone_id, method, status, amount_fen, refunded_fen, transaction_id,
                      paid_dt, created_dt, updated_dt)
SELECT b.id, 1, b.merchant_id, b.zone_id, 'bank_transfer', 'succeeded', b.amount_fen / 2, 0, 'BENCH-' || b.id,
       CASE WHEN b.id % 200 = 7 THEN TIMESTAMPTZ '2026-11-20 10:00+08' ELSE TIMESTAMPTZ '2026-11-10 10:00+08' END,
       now(), now()
FROM bills b WHERE b.id % 50 = 3 OR b.id % 200 = 7;
INSERT INTO payment_allocations (market_id, payment_id, bill_id, amount_fen)
SELECT 1, p.id, p.id, p.amount_fen FROM payments p;
UPDATE bills SET paid_fen = p.amount_fen, status = 'partially_paid' FROM payments p WHERE p.id = bills.id;
INSERT INTO late_fee_rules (id, market_id, lease_id, effective_from, daily_rate, grace_days, cap_fen, cap_percent,
                            is_active, created_dt, updated_dt)
VALUES (1, 1, NULL, DATE '2026-01-01', 0.0005, 5, NULL, 10, true, now(), now());
INSERT INTO late_fee_rules (id, market_id, lease_id, effective_from, daily_rate, grace_days, cap_fen, cap_percent,
                            is_active, created_dt, updated_dt)
SELECT 1 + l, 1, l, DATE '2026-06-01', 0.0003, 0, 20000, NULL, true, now(), now()
FROM generate_series(1, :leases) l WHERE l % 100 = 1;
"""

HISTORY_SQL = """
INSERT INTO late_fee_accruals (market_id, bill_id, rule_id, accrual_date, principal_fen, daily_micro_fen,
                               cumulative_micro_fen, cumulative_fen, cap_fen, amount_fen, created_dt)
SELECT 1, b.id, 1, :day, b.amount_fen - b.paid_fen, (b.amount_fen - b.paid_fen) * 500,
       (b.amount_fen - b.paid_fen) * 500 * (:day - b.due_date),
       CASE WHEN :day - b.due_date > 5
            THEN LEAST(((b.amount_fen - b.paid_fen) * 500 * (:day - b.due_date) + 500000) / 1000000,
                       (b.amount_fen * 1000 + 5000) / 10000)
            ELSE 0 END,
       (b.amount_fen * 1000 + 5000) / 10000,
       CASE WHEN :day - b.due_date > 5 THEN ((b.amount_fen - b.paid_fen) * 500 + 500000) / 1000000 ELSE 0 END,
       now()
FROM bills b WHERE b.due_date < :day;
"""

#: The accrual written by hand: what the service must be measured against.
BASELINE_SQL = """
INSERT INTO late_fee_accruals (market_id, bill_id, rule_id, accrual_date, principal_fen, daily_micro_fen,
                               cumulative_micro_fen, cumulative_fen, cap_fen, amount_fen, created_dt)
SELECT market_id, bill_id, rule_id, :day, principal, daily, cum, prev_fen + amount, cap, amount, now()
FROM (
  SELECT s.*,
         CASE WHEN s.past_grace AND LEAST(s.target, COALESCE(s.cap, s.target)) > s.prev_fen
              THEN LEAST(s.target, COALESCE(s.cap, s.target)) - s.prev_fen ELSE 0 END AS amount
  FROM (
    SELECT b.id AS bill_id, b.market_id, r.id AS rule_id, p.principal,
           p.principal * rm.micro AS daily,
           COALESCE(prev.cumulative_micro_fen, 0) + p.principal * rm.micro AS cum,
           (COALESCE(prev.cumulative_micro_fen, 0) + p.principal * rm.micro + 500000) / 1000000 AS target,
           LEAST(r.cap_fen, (b.amount_fen * round(r.cap_percent * 100)::bigint + 5000) / 10000) AS cap,
           (:day - b.due_date) > r.grace_days AS past_grace,
           COALESCE(prev.cumulative_fen, 0) AS prev_fen
    FROM bills b
    LEFT JOIN (
      SELECT DISTINCT ON (lease_id) lease_id, id AS rule_id FROM late_fee_rules
      WHERE market_id = :market AND lease_id IS NOT NULL AND effective_from <= :day
      ORDER BY lease_id, effective_from DESC
    ) ov ON ov.lease_id = b.lease_id
    JOIN late_fee_rules r ON r.id = COALESCE(ov.rule_id, :market_rule)
    CROSS JOIN LATERAL (SELECT round(r.daily_rate * 1000000)::bigint AS micro) rm
    LEFT JOIN (
      SELECT a.bill_id, sum(a.amount_fen)::bigint AS fen FROM payment_allocations a JOIN payments y ON y.id = a.payment_id
      WHERE y.market_id = :market AND y.status = 'succeeded' AND y.paid_dt >= :day_start GROUP BY a.bill_id
    ) ps ON ps.bill_id = b.id
    LEFT JOIN (
      SELECT a.bill_id, sum(a.amount_fen)::bigint AS fen FROM refund_allocations a JOIN refunds f ON f.id = a.refund_id
      WHERE f.market_id = :market AND f.status = 'succeeded' AND f.succeeded_dt >= :day_start GROUP BY a.bill_id
    ) rs ON rs.bill_id = b.id
    CROSS JOIN LATERAL (SELECT b.amount_fen - b.paid_fen + COALESCE(ps.fen, 0) - COALESCE(rs.fen, 0) AS principal) p
    LEFT JOIN LATERAL (
      SELECT a.cumulative_micro_fen, a.cumulative_fen FROM late_fee_accruals a
      WHERE a.bill_id = b.id AND a.accrual_date < :day ORDER BY a.accrual_date DESC LIMIT 1
    ) prev ON true
    WHERE b.market_id = :market AND b.status IN ('issued', 'partially_paid') AND b.due_date < :day
      AND r.is_active AND p.principal > 0
  ) s
) t
ON CONFLICT (bill_id, accrual_date) DO NOTHING;
UPDATE bills SET late_fee_fen = a.cumulative_fen - COALESCE(w.fen, 0), updated_dt = now()
FROM late_fee_accruals a
LEFT JOIN (SELECT bill_id, sum(amount_fen)::bigint AS fen FROM late_fee_waivers WHERE market_id = :market
           GROUP BY bill_id) w ON w.bill_id = a.bill_id
WHERE a.bill_id = bills.id AND a.market_id = :market AND a.accrual_date = :day AND a.amount_fen > 0;
"""


def _run_script(conn, script, params):
    import sqlalchemy as sa

    for statement in [s.strip() for s in script.split(";\n") if s.strip()]:
        conn.execute(sa.text(statement), params)


def prepare(url, bills, lines, rebuild):
    """Build the bench data once (same size: reused)."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models.latefees import LateFeeRun

    app = _app(url)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name != "postgresql":
            sys.exit("the benchmark needs PostgreSQL (--database-url)")
        inspector = sa.inspect(engine)
        if not rebuild and inspector.has_table("bills"):
            with engine.connect() as conn:
                have = conn.execute(sa.text("SELECT count(*) FROM bills")).scalar()
                have_lines = conn.execute(sa.text("SELECT count(*) FROM bill_lines")).scalar()
            if have == bills and have_lines == bills * lines:
                print(f"reusing {have:,} bills / {have_lines:,} lines in {engine.url.database}")
                return
        print(f"building {bills:,} bills x {lines} lines in {engine.url.database} ...", flush=True)
        started = time.perf_counter()
        db.drop_all()
        db.create_all()
        leases = bills // 4
        with engine.begin() as conn:
            _run_script(conn, BUILD_SQL, {"bills": bills, "lines": lines, "leases": leases})
            for day in HISTORY:
                conn.execute(sa.text(HISTORY_SQL), {"day": day})
                conn.execute(sa.insert(LateFeeRun.__table__).values(
                    market_id=MARKET_ID, accrual_date=day, row_count=0, bill_count=0, amount_fen=0,
                    created_dt=sa.func.now()))
            for table in ("markets", "zones", "merchants", "leases", "bills", "bill_lines", "payments",
                          "late_fee_rules", "late_fee_accruals"):
                conn.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)


# --- one measured run (child process) -----------------------------------------------------------


def run_child(url, which):
    """Accrue DAY once (service or baseline) inside a rolled-back transaction; print JSON."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models.latefees import LateFeeAccrual

    app = _app(url)
    slow = []

    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["h6_started"] = time.perf_counter()

    def _after(conn, cursor, statement, parameters, context, executemany):
        spent = time.perf_counter() - conn.info.pop("h6_started", time.perf_counter())
        if spent > 0.5:
            slow.append((" ".join(statement.split())[:70], round(spent, 2)))

    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))  # connect before the clock starts
        sa.event.listen(db.engine, "before_cursor_execute", _before)
        sa.event.listen(db.engine, "after_cursor_execute", _after)
        started = time.perf_counter()
        if which == "service":
            from app.services import audit
            from app.services.latefees import accrue_late_fees

            audit.set_actor(None, "bench")
            result = accrue_late_fees(MARKET_ID, DAY)
            db.session.flush()
        else:
            from app.utils.dates import local_day_bounds_utc

            params = {"day": DAY, "market": MARKET_ID, "market_rule": MARKET_RULE_ID,
                      "day_start": local_day_bounds_utc(DAY)[0]}
            _run_script(db.session.connection(), BASELINE_SQL, params)
        elapsed = time.perf_counter() - started
        sa.event.remove(db.engine, "before_cursor_execute", _before)
        sa.event.remove(db.engine, "after_cursor_execute", _after)
        rows, total = db.session.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(LateFeeAccrual.amount_fen), 0))
            .where(LateFeeAccrual.accrual_date == DAY)
        ).one()
        fees = db.session.execute(sa.text("SELECT sum(late_fee_fen) FROM bills")).scalar()
        db.session.rollback()
        if which == "service":
            assert [d.day for d in result.days] == [DAY], result
    print(json.dumps({"which": which, "seconds": elapsed, "rows": rows, "amount_fen": int(total),
                      "late_fee_total": int(fees), "peak_mb": _peak_mb(),
                      "statements": slow}))


def _vacuum(url):
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE late_fee_accruals, bills, late_fee_runs"))
    engine.dispose()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bills", type=int, default=1_000_000)
    parser.add_argument("--lines-per-bill", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--child", choices=["service", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.database_url, args.child)
        return
    prepare(args.database_url, args.bills, args.lines_per_bill, args.rebuild)
    results = {"service": [], "baseline": []}
    for round_no in range(args.rounds):
        for which in ("service", "baseline"):
            _vacuum(args.database_url)
            out = subprocess.run([sys.executable, __file__, "--child", which, "--database-url", args.database_url],
                                 capture_output=True, text=True, check=True)
            data = json.loads(out.stdout.strip().splitlines()[-1])
            results[which].append(data)
            print(f"round {round_no + 1} {which:8s}: {data['seconds']:6.2f} s, {data['rows']:,} rows, "
                  f"+{data['amount_fen']:,} fen, peak {data['peak_mb']:.0f} MB", flush=True)
            for text, spent in data["statements"]:
                print(f"      {spent:7.2f} s  {text}", flush=True)
    service, baseline = results["service"], results["baseline"]
    same = {(d["rows"], d["amount_fen"], d["late_fee_total"]) for d in service + baseline}
    if len(same) != 1:
        sys.exit(f"service and baseline disagree: {same}")
    best_s, best_b = min(d["seconds"] for d in service), min(d["seconds"] for d in baseline)
    med_s = statistics.median(d["seconds"] for d in service)
    med_b = statistics.median(d["seconds"] for d in baseline)
    print(f"\nbills: {args.bills:,} open overdue ({args.bills * args.lines_per_bill:,} bill lines), "
          f"accrual rows written for {DAY}: {service[0]['rows']:,}, added {service[0]['amount_fen']:,} fen")
    print(f"service : best {best_s:.2f} s, median {med_s:.2f} s, peak memory "
          f"{max(d['peak_mb'] for d in service):.0f} MB")
    print(f"baseline: best {best_b:.2f} s, median {med_b:.2f} s, peak memory "
          f"{max(d['peak_mb'] for d in baseline):.0f} MB")
    print(f"ratio service / baseline: {best_s / best_b:.2f} (best), {med_s / med_b:.2f} (median); goal <= 3")


if __name__ == "__main__":
    main()
