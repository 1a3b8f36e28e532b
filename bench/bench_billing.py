"""Benchmark: the billing run over a 100,000-unit market, against hand-written SQL.

    python bench/bench_billing.py [--stalls 100000] [--rounds 3] [--public-meters 4] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_h5_bench]

1. Builds (once) the market with bench/build_market.py (seed_demo(stalls=100000): 100,000
   units, ~85,000 leases (15% quarterly), 200,000 meters, fee items RENT and MGMT per m²,
   SANI fixed, WATER and POWER metered with tiers), adds --public-meters public electricity
   meters (one per zone, apportioned by area) and one period of readings for every meter with
   one INSERT ... SELECT.
2. Times the posting of that period, each run in a fresh child process inside a transaction
   that is rolled back (so every run starts from the same data), alternating:
   - service: app.services.billing.post_billing_run (the staged INSERT ... SELECT statements,
     the public shares in Python, bills, lines, readings and run row, audit);
   - baseline: the same bills and lines written by hand as plain PostgreSQL statements
     (temporary tables, DISTINCT ON, numeric round(), window-function apportionment).
   Both must produce the same bills and lines (a fingerprint over lease, fee item, meter and
   amount of every line, plus the bill totals).
Prints the best and median time of each, the ratio, and each child's peak memory
(resource.getrusage ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_h5_bench"


def _app(url):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("MARKET_ENV", "development")
    os.environ.setdefault("DEMO_PASSWORD", "bench-password-1")
    from app import create_app

    app = create_app("development")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    return app


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _period():
    from app.utils.dates import today_local

    return today_local().replace(day=1)


# --- preparation --------------------------------------------------------------------------------


def prepare(url, stalls, public_meters):
    """Build the market (once), add public meters and the period's readings (once)."""
    import sqlalchemy as sa

    from build_market import build

    os.environ["DATABASE_URL"] = url
    info = build(stalls)
    app = _app(url)
    from app.extensions import db

    period = _period()
    with app.app_context():
        market_id = db.session.scalar(sa.text("SELECT id FROM markets WHERE code = 'JJ'"))
        zones = db.session.execute(sa.text("SELECT id, code FROM zones WHERE market_id = :m ORDER BY code"),
                                   {"m": market_id}).all()
        for zone_id, code in zones[:public_meters]:
            db.session.execute(sa.text("""
                INSERT INTO meters (market_id, number, meter_type, unit_id, zone_id, unit_label, multiplier,
                                    max_reading, install_date, start_reading, is_public, is_active, created_dt, updated_dt)
                VALUES (:m, :number, 'electricity', NULL, :z, 'kWh', 1, 999999, DATE '2024-12-01', 0, true, true, now(), now())
                ON CONFLICT DO NOTHING"""), {"m": market_id, "number": f"PUB-{code}", "z": zone_id})
        added = db.session.execute(sa.text("""
            INSERT INTO meter_readings (market_id, meter_id, zone_id, period, reading, previous_reading, consumption,
                                        is_rollover, has_replacement, is_flagged, created_dt, updated_dt)
            SELECT m.market_id, m.id, m.zone_id, :p,
                   p.prev + c.qty, p.prev, c.qty, false, false, false, now(), now()
            FROM meters m
            CROSS JOIN LATERAL (SELECT (m.id % 997) * 10 + 100 AS prev) p
            CROSS JOIN LATERAL (SELECT CASE
                    WHEN m.is_public THEN 5000 + (m.id % 7) * 1234.5
                    WHEN m.meter_type = 'water' THEN ((m.id::bigint * 7919) % 4000) / 100.0
                    ELSE ((m.id::bigint * 104729) % 60000) / 100.0 END AS qty) c
            WHERE m.market_id = :m
            ON CONFLICT (meter_id, period) DO NOTHING"""), {"m": market_id, "p": period}).rowcount
        db.session.commit()
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
        counts = db.session.execute(sa.text("""
            SELECT (SELECT count(*) FROM units WHERE market_id = :m),
                   (SELECT count(*) FROM meters WHERE market_id = :m),
                   (SELECT count(*) FROM leases WHERE market_id = :m),
                   (SELECT count(*) FROM meter_readings WHERE market_id = :m AND period = :p),
                   (SELECT count(*) FROM bills WHERE market_id = :m)"""), {"m": market_id, "p": period}).one()
    return {"market_id": market_id, "period": period.isoformat(), "units": counts[0], "meters": counts[1],
            "leases": counts[2], "readings": counts[3], "bills_before": counts[4], "readings_added": added,
            "build_seconds": info["seconds"], "built": info["created"]}


# --- the two contenders (each in a child process, rolled back) --------------------------------------------


FINGERPRINT = """
SELECT count(DISTINCT b.id), count(l.id), coalesce(sum(l.amount_fen), 0),
       md5(string_agg(b.lease_id || ':' || coalesce(l.fee_item_id, 0) || ':' || coalesce(l.meter_id, 0) || ':'
                      || l.amount_fen || ':' || b.amount_fen || ':' || b.number,
                      ',' ORDER BY b.lease_id, l.fee_item_id, l.meter_id, l.amount_fen))
FROM bills b JOIN bill_lines l ON l.bill_id = b.id
WHERE b.market_id = :m AND b.period = :p AND b.kind = 'regular'
"""


def run_service(app, market_id, period):
    """The billing service, as the job runs it (request + post)."""
    from app.services import billing

    run = billing.request_billing_run(market_id, period)
    result = billing.post_billing_run(run.id)
    return result.new_bills


BASELINE = [
    # Leases to bill and the price row in force per (lease, fee item).
    """CREATE TEMP TABLE bl_leases ON COMMIT DROP AS
       SELECT l.id, l.code, l.merchant_id, l.zone_id, l.start_date, l.end_date,
              CASE l.billing_cycle WHEN 'quarterly' THEN 3 WHEN 'yearly' THEN 12 ELSE 1 END AS months
       FROM leases l
       WHERE l.market_id = :m AND l.status <> 'draft' AND l.start_date <= :pe AND l.end_date >= :p
         AND NOT EXISTS (SELECT 1 FROM bills b WHERE b.lease_id = l.id AND b.period = :p
                         AND b.kind = 'regular' AND b.status <> 'void')""",
    """CREATE TEMP TABLE bl_price ON COMMIT DROP AS
       SELECT DISTINCT ON (lf.lease_id, lf.fee_item_id) lf.lease_id, lf.fee_item_id,
              COALESCE(lf.rate_fen, fi.default_rate_fen) AS rate, fi.pricing_mode, fi.meter_type, fi.name, fi.sort_order
       FROM lease_fees lf JOIN fee_items fi ON fi.id = lf.fee_item_id AND fi.is_active
       WHERE lf.market_id = :m AND lf.effective_from <= :pe
       ORDER BY lf.lease_id, lf.fee_item_id, lf.effective_from DESC""",
    """CREATE TEMP TABLE bl_lines (lease_id int, merchant_id int, zone_id int, fee_item_id int, unit_id int,
           meter_id int, reading_id int, kind text, sort_key int, description text, quantity numeric,
           unit_label text, rate_fen numeric, amount_fen bigint, service_start date, service_end date) ON COMMIT DROP""",
    # Fixed and per-m² fees of leases whose cycle starts this month, prorated by days.
    """INSERT INTO bl_lines
       SELECT w.id, w.merchant_id, w.zone_id, pr.fee_item_id, NULL, NULL, NULL, pr.pricing_mode,
              pr.sort_order * 10 + CASE pr.pricing_mode WHEN 'fixed' THEN 0 ELSE 1 END,
              pr.name || ' ' || to_char(w.s, 'YYYY-MM-DD') || '~' || to_char(w.e, 'YYYY-MM-DD')
                 || CASE WHEN w.e - w.s + 1 < w.we - :p + 1 THEN ' (按天 ' || (w.e - w.s + 1) || '/' || (w.we - :p + 1) || ')' ELSE '' END,
              CASE pr.pricing_mode WHEN 'per_area' THEN a.area ELSE w.months END,
              CASE pr.pricing_mode WHEN 'per_area' THEN 'm²' ELSE '月' END, pr.rate,
              round(pr.rate * CASE pr.pricing_mode WHEN 'per_area' THEN a.area ELSE 1 END * w.months
                    * (w.e - w.s + 1) / (w.we - :p + 1)),
              w.s, w.e
       FROM (SELECT l.*, greatest(l.start_date, :p) AS s,
                    least(l.end_date, (:p + make_interval(months => l.months) - interval '1 day')::date) AS e,
                    (:p + make_interval(months => l.months) - interval '1 day')::date AS we
             FROM bl_leases l
             WHERE ((extract(year FROM :p)::int * 12 + extract(month FROM :p)::int)
                    - (extract(year FROM l.start_date)::int * 12 + extract(month FROM l.start_date)::int)) % l.months = 0) w
       JOIN bl_price pr ON pr.lease_id = w.id AND pr.pricing_mode IN ('fixed', 'per_area')
       JOIN (SELECT lu.lease_id, sum(u.area_m2) AS area FROM lease_units lu JOIN units u ON u.id = lu.unit_id
             GROUP BY lu.lease_id) a ON a.lease_id = w.id""",
    "ANALYZE bl_leases, bl_price",
    # Unit owner (newest lease covering the period) for the metered fees.
    """CREATE TEMP TABLE bl_owner ON COMMIT DROP AS
       SELECT DISTINCT ON (lu.unit_id) lu.unit_id, lu.lease_id
       FROM lease_units lu JOIN leases l ON l.id = lu.lease_id
       WHERE l.market_id = :m AND l.status <> 'draft' AND l.start_date <= :pe AND l.end_date >= :p
       ORDER BY lu.unit_id, l.start_date DESC, l.id DESC""",
    # Metered fees: tiered (bands) or flat.
    """INSERT INTO bl_lines
       SELECT l.id, l.merchant_id, l.zone_id, pr.fee_item_id, m.unit_id, m.id, r.id, 'metered', pr.sort_order * 10 + 2,
              pr.name || ' ' || m.number || ' 上次 ' || trim_scale(r.previous_reading) || ' 本次 ' || trim_scale(r.reading)
                 || ' 用量 ' || trim_scale(r.consumption) || m.unit_label,
              r.consumption, m.unit_label, CASE WHEN count(t.id) = 0 THEN pr.rate END,
              CASE WHEN count(t.id) = 0 THEN round(r.consumption * pr.rate)
                   ELSE round(sum(greatest(0, least(r.consumption, coalesce(t.to_qty, r.consumption)) - t.from_qty)
                                  * t.rate_fen)) END,
              :p, :pe
       FROM bl_owner o
       JOIN bl_leases l ON l.id = o.lease_id
       JOIN meters m ON m.unit_id = o.unit_id
       JOIN meter_readings r ON r.meter_id = m.id AND r.period = :p AND r.billed_dt IS NULL
       JOIN bl_price pr ON pr.lease_id = l.id AND pr.pricing_mode = 'metered' AND pr.meter_type = m.meter_type
       LEFT JOIN fee_tiers t ON t.fee_item_id = pr.fee_item_id
       GROUP BY l.id, l.merchant_id, l.zone_id, pr.fee_item_id, pr.name, pr.sort_order, pr.rate, m.unit_id, m.id,
                m.number, m.unit_label, r.id, r.previous_reading, r.reading, r.consumption""",
    # Public meters: the zone's units billed now, by area, largest remainder.
    """INSERT INTO bl_lines
       WITH item AS (
           SELECT DISTINCT ON (meter_type) id, meter_type, name, default_rate_fen, sort_order FROM fee_items
           WHERE market_id = :m AND pricing_mode = 'metered' AND is_active ORDER BY meter_type, sort_order, id),
       pub AS (
           SELECT r.id AS reading_id, m.id AS meter_id, m.zone_id, m.number, i.id AS fee_item_id, i.name, i.sort_order,
                  round(r.consumption * i.default_rate_fen)::bigint AS total
           FROM meter_readings r JOIN meters m ON m.id = r.meter_id JOIN item i ON i.meter_type = m.meter_type
           WHERE r.market_id = :m AND r.period = :p AND r.billed_dt IS NULL AND m.is_public AND m.unit_id IS NULL),
       share AS (
           SELECT p.*, u.id AS unit_id, u.code, o.lease_id, l.merchant_id, u.area_m2,
                  p.total * u.area_m2 / sum(u.area_m2) OVER w AS exact,
                  sum(u.area_m2) OVER w AS zone_area
           FROM pub p
           JOIN units u ON u.zone_id = p.zone_id
           JOIN bl_owner o ON o.unit_id = u.id
           JOIN bl_leases l ON l.id = o.lease_id
           JOIN bl_price pr ON pr.lease_id = l.id AND pr.fee_item_id = p.fee_item_id
           WINDOW w AS (PARTITION BY p.reading_id)),
       ranked AS (
           SELECT s.*, floor(s.exact)::bigint AS base,
                  s.total - sum(floor(s.exact)::bigint) OVER (PARTITION BY s.reading_id) AS left_over,
                  row_number() OVER (PARTITION BY s.reading_id ORDER BY s.exact - floor(s.exact) DESC, s.code, s.unit_id) AS rank
           FROM share s)
       SELECT lease_id, merchant_id, zone_id, fee_item_id, CASE WHEN count(*) = 1 THEN min(unit_id) END, meter_id,
              reading_id, 'public', sort_order * 10 + 3,
              '公摊' || name || ' ' || number || ' 按面积 ' || trim_scale(sum(area_m2)) || '/' || trim_scale(min(zone_area)) || 'm²',
              sum(area_m2), 'm²', NULL, sum(base + CASE WHEN rank <= left_over THEN 1 ELSE 0 END), :p, :pe
       FROM ranked
       GROUP BY lease_id, merchant_id, zone_id, fee_item_id, meter_id, reading_id, name, number, sort_order""",
    "ANALYZE bl_leases, bl_price, bl_owner, bl_lines",
    # One bill per lease, numbered in zone and lease order; amount = sum of its lines.
    """INSERT INTO bills (market_id, number, kind, status, merchant_id, lease_id, zone_id, period, issue_date,
                          due_date, amount_fen, paid_fen, late_fee_fen, run_id, paid_dt, created_dt, updated_dt)
       SELECT :m, 'JJ-' || to_char(:p, 'YYYYMM') || '-' || lpad((row_number() OVER (ORDER BY z.code, l.code, g.lease_id))::text, 6, '0'),
              'regular', CASE WHEN g.total = 0 THEN 'paid' ELSE 'issued' END, g.merchant_id, g.lease_id, g.zone_id, :p,
              CURRENT_DATE, CURRENT_DATE + 15, g.total, 0, 0, NULL, CASE WHEN g.total = 0 THEN now() END, now(), now()
       FROM (SELECT lease_id, merchant_id, zone_id, sum(amount_fen) AS total FROM bl_lines
             GROUP BY lease_id, merchant_id, zone_id) g
       JOIN leases l ON l.id = g.lease_id JOIN zones z ON z.id = g.zone_id""",
    """INSERT INTO bill_lines (market_id, bill_id, fee_item_id, unit_id, meter_id, reading_id, charge_id, description,
                               quantity, unit_label, rate_fen, amount_fen, service_start, service_end)
       SELECT :m, b.id, s.fee_item_id, s.unit_id, s.meter_id, s.reading_id, NULL, s.description, s.quantity,
              s.unit_label, s.rate_fen, s.amount_fen, s.service_start, s.service_end
       FROM bl_lines s JOIN bills b ON b.lease_id = s.lease_id AND b.period = :p AND b.kind = 'regular'
                                   AND b.status <> 'void'
       ORDER BY b.id, s.sort_key""",
    """UPDATE meter_readings r SET bill_id = b.id, billed_dt = now(), updated_dt = now()
       FROM bl_lines s JOIN bills b ON b.lease_id = s.lease_id AND b.period = :p AND b.kind = 'regular' AND b.status <> 'void'
       WHERE s.kind = 'metered' AND r.id = s.reading_id""",
    """UPDATE meter_readings SET billed_dt = now(), updated_dt = now()
       WHERE id IN (SELECT reading_id FROM bl_lines WHERE kind = 'public')""",
]


def run_baseline(app, market_id, period):
    """The same bills and lines as plain PostgreSQL statements."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.utils.dates import period_end

    params = {"m": market_id, "p": period, "pe": period_end(period)}
    for sql in BASELINE:
        names = set(re.findall(r"(?<![:\w]):(\w+)", sql))
        stmt = sa.text(sql).bindparams(*[sa.bindparam(n, type_=sa.Date()) for n in ("p", "pe") if n in names])
        db.session.execute(stmt, {k: v for k, v in params.items() if k in names})
    return db.session.scalar(sa.text("SELECT count(*) FROM bills WHERE market_id = :m AND period = :p"),
                             {"m": market_id, "p": period})


def child(url, which, market_id, period_text):
    """One timed run in this process, rolled back; prints JSON."""
    from datetime import date

    import sqlalchemy as sa

    app = _app(url)
    from app.extensions import db

    period = date.fromisoformat(period_text)
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        start = time.perf_counter()
        bills = (run_service if which == "service" else run_baseline)(app, market_id, period)
        db.session.flush()
        seconds = time.perf_counter() - start
        fingerprint = list(db.session.execute(sa.text(FINGERPRINT), {"m": market_id, "p": period}).one())
        db.session.rollback()
    print(json.dumps({"which": which, "seconds": seconds, "bills": bills, "peak_mb": _peak_mb(),
                      "fingerprint": [str(v) for v in fingerprint]}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--public-meters", type=int, default=4)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--child", choices=["service", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--market-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--period", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("the billing benchmark runs on PostgreSQL (--database-url)")
    if args.child:
        return child(args.database_url, args.child, args.market_id, args.period)
    info = prepare(args.database_url, args.stalls, args.public_meters)
    print(f"market: {info['units']} units, {info['meters']} meters, {info['leases']} leases, "
          f"{info['readings']} readings for {info['period'][:7]} (built now: {info['built']})")
    if info["bills_before"]:
        print(f"note: {info['bills_before']} bills already in the database (not of this run)")
    results = {"service": [], "baseline": []}
    for _ in range(args.rounds):
        for which in ("service", "baseline"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", which, "--database-url", args.database_url,
                 "--market-id", str(info["market_id"]), "--period", info["period"]],
                check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            row = json.loads(out)
            results[which].append(row)
            print(f"  {which:8s} {row['seconds']:7.2f} s  {row['bills']} bills  peak {row['peak_mb']:.0f} MB  "
                  f"lines={row['fingerprint'][1]} total_fen={row['fingerprint'][2]}")
    prints = {tuple(r["fingerprint"]) for rows in results.values() for r in rows}
    same = len(prints) == 1
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    peak = max(r["peak_mb"] for r in results["service"])
    print(f"service : best {best['service']:.2f} s, median {median['service']:.2f} s, peak memory {peak:.0f} MB")
    print(f"baseline: best {best['baseline']:.2f} s, median {median['baseline']:.2f} s")
    print(f"ratio service/baseline: {best['service'] / best['baseline']:.2f} (best), "
          f"{median['service'] / median['baseline']:.2f} (median); same bills and lines: {'yes' if same else 'NO'}")
    if not same:
        for rows in results.values():
            for r in rows:
                print("   ", r["which"], r["fingerprint"])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
