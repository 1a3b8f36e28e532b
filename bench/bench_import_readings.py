"""Benchmark: import a 200,000-row meter-readings CSV end to end, against a hand-written SQL baseline.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_h4_bench \
        python bench/bench_import_readings.py [--rows 200000] [--rounds 3]

1. Builds the market if needed (bench/build_market.py: 100,000 units, 200,000 meters) and gives
   every meter six periods of history (2026-03 .. 2026-08, set-based SQL, once).
2. Writes a readings CSV for 2026-09 in GBK with Chinese headers and CRLF (what Excel in China
   writes): one row per meter, with ~1% spikes (flagged), and bad rows (unknown meters, malformed
   readings, duplicates, drops below the previous reading) that must be reported.
3. Times, in fresh child processes (so peak memory is the import's own):
   - service: the application's import (app.services.readings.import_meter_readings through an
     ImportBatch, as the CLI does): parse, validate, store, commit, write the error file;
   - baseline: one hand-written SQL pipeline on the same file: COPY into a temp table, one
     statement computing validation, previous reading (LATERAL) and the median of the last six
     consumptions (percentile_cont), one INSERT ... ON CONFLICT, and COPY of the rejected rows
     with their reasons.
   The 2026-09 readings are deleted (and the table vacuumed) before every run; runs alternate
   and the best and median of --rounds are reported for each.
Prints both times, their ratio and peak memory (resource.getrusage ru_maxrss).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PERIOD = "2026-09"
HISTORY = ["2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08"]
MARKET_CODE = "JJ"


def _app():
    from app import create_app

    return create_app("development")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- preparation --------------------------------------------------------------------------------


def prepare(rows: int, path: Path) -> dict:
    """Build the market and its history once; write the CSV to import."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import Market, Meter
    from bench.build_market import build

    built = build(100_000)
    app = _app()
    with app.app_context():
        market_id = db.session.scalar(sa.select(Market.id).where(Market.code == MARKET_CODE))
        has_history = db.session.execute(sa.text(
            "SELECT EXISTS (SELECT 1 FROM meter_readings WHERE market_id = :m AND period = :p)"),
            {"m": market_id, "p": f"{HISTORY[-1]}-01"}).scalar()
        if not has_history:
            start = time.perf_counter()
            for k, period in enumerate(HISTORY):
                # reading_k = (k + 1) * 100 + id % 50: about 100 a month, so the median is ~100.
                db.session.execute(sa.text(f"""
                    INSERT INTO meter_readings (market_id, meter_id, zone_id, period, reading, read_date, reader,
                        previous_reading, consumption, is_rollover, has_replacement, is_flagged,
                        created_dt, updated_dt)
                    SELECT m.market_id, m.id, m.zone_id, DATE '{period}-01',
                        {(k + 1) * 100} + m.id % 50, DATE '{period}-01' + 27, '基准',
                        {0 if k == 0 else f"{k * 100} + m.id % 50"}, {f"100 + m.id % 50" if k == 0 else "100"},
                        false, false, false, now(), now()
                    FROM meters m WHERE m.market_id = :m
                    ON CONFLICT (meter_id, period) DO NOTHING
                """), {"m": market_id})
            db.session.commit()
            print(f"history: {len(HISTORY)} periods for every meter ({time.perf_counter() - start:.1f} s)")
        meters = db.session.execute(
            sa.select(Meter.id, Meter.number).where(Meter.market_id == market_id).order_by(Meter.id)).all()
    bad = write_csv(path, meters[:rows])
    return {"built": built, "market_id": market_id, "bad": bad, "rows": min(rows, len(meters))}


def write_csv(path: Path, meters) -> dict:
    """One row per meter for PERIOD, with some spikes and some rows that must be rejected."""
    bad = {"unknown": 0, "malformed": 0, "duplicate": 0, "below": 0, "spike": 0}
    with open(path, "w", encoding="gbk", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["表号", "账期", "读数", "抄表日期", "抄表人", "备注"])
        for n, (meter_id, number) in enumerate(meters):
            previous = 600 + meter_id % 50
            reading = previous + 80 + (meter_id * 7919) % 41
            note = ""
            if n % 100 == 17:
                reading = previous + 500
                bad["spike"] += 1
                note = "用量偏大"
            if n % 500 == 3:
                number = f"X{number}"
                bad["unknown"] += 1
            elif n % 1000 == 5:
                reading = f"{reading}a"
                bad["malformed"] += 1
            elif n % 1000 == 7:
                reading = previous - 200
                bad["below"] += 1
            writer.writerow([number, PERIOD, reading, "2026-09-28", "抄表员", note])
            if n % 1000 == 9:
                writer.writerow([number, PERIOD, reading, "2026-09-28", "抄表员", "重复行"])
                bad["duplicate"] += 1
    return bad


def reset(market_id: int) -> None:
    """Forget the PERIOD readings, batches and their audit entries; vacuum so every run starts alike."""
    import psycopg

    with psycopg.connect(_dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM meter_readings WHERE market_id = %s AND period = %s", (market_id, f"{PERIOD}-01"))
        conn.execute("DELETE FROM import_row_errors")
        conn.execute("DELETE FROM import_batches")
        conn.execute("DELETE FROM audit_log WHERE table_name = 'meter_readings'")
        conn.execute("VACUUM ANALYZE meter_readings")


def _dsn() -> str:
    return os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")


# --- the two contenders (each in its own process) -----------------------------------------------


def run_service(csv_path: str) -> dict:
    """The application's import, end to end, as the CLI runs it."""
    from app.extensions import db
    from app.models.readings import ImportKind
    from app.services import audit
    from app.services.readings import create_import_batch, get_market, import_meter_readings, write_batch_error_file

    app = _app()
    with app.app_context():
        start = time.perf_counter()
        audit.set_actor(None, "bench")
        market = get_market(MARKET_CODE)
        batch = create_import_batch(market.id, ImportKind.readings, csv_path, source="cli")
        result = import_meter_readings(batch, csv_path)
        db.session.commit()
        errors_path = csv_path + ".errors.csv"
        write_batch_error_file(batch, errors_path, "csv")
        seconds = time.perf_counter() - start
        counts = result.counts()
    return {"seconds": seconds, "peak_mb": _peak_mb(), "counts": counts}


BASELINE_SQL = r"""
CREATE TEMP TABLE raw (
    line_no bigserial, meter_number text, period text, reading text, read_date text, reader text, note text
) ON COMMIT DROP;
"""

BASELINE_CHECK = r"""
CREATE TEMP TABLE checked ON COMMIT DROP AS
SELECT r.line_no + 1 AS line_no, r.meter_number, r.period, r.reading, r.read_date, r.reader, r.note,
       m.id AS meter_id, m.zone_id, m.max_reading, m.multiplier, m.start_reading, m.install_date,
       CASE WHEN r.period ~ '^\d{4}-(0[1-9]|1[0-2])$' THEN to_date(r.period, 'YYYY-MM') END AS p,
       CASE WHEN r.reading ~ '^\d+(\.\d{1,4})?$' THEN r.reading::numeric END AS val,
       CASE WHEN r.read_date ~ '^\d{4}-\d{2}-\d{2}$' THEN to_date(r.read_date, 'YYYY-MM-DD') END AS rd,
       row_number() OVER (PARTITION BY r.meter_number, r.period ORDER BY r.line_no) AS nth
FROM raw r LEFT JOIN meters m ON m.market_id = %(market)s AND m.number = r.meter_number;

CREATE TEMP TABLE computed ON COMMIT DROP AS
SELECT c.*, coalesce(prev.reading, c.start_reading) AS prev_reading, hist.median,
       CASE WHEN c.val >= coalesce(prev.reading, c.start_reading)
                THEN c.val - coalesce(prev.reading, c.start_reading)
            WHEN c.max_reading - coalesce(prev.reading, c.start_reading) + 1 + c.val <= (c.max_reading + 1) * 0.1
                THEN c.max_reading - coalesce(prev.reading, c.start_reading) + 1 + c.val
       END AS diff,
       c.val < coalesce(prev.reading, c.start_reading) AS rolled
FROM checked c
LEFT JOIN LATERAL (
    SELECT x.reading FROM meter_readings x
    WHERE x.meter_id = c.meter_id AND x.period < c.p ORDER BY x.period DESC LIMIT 1
) prev ON true
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY h.consumption) AS median FROM (
        SELECT x.consumption FROM meter_readings x
        WHERE x.meter_id = c.meter_id AND x.period < c.p ORDER BY x.period DESC LIMIT 6
    ) h
) hist ON true;

INSERT INTO meter_readings (market_id, meter_id, zone_id, period, reading, read_date, reader, note,
    previous_reading, consumption, is_rollover, has_replacement, is_flagged, flag_reason, created_dt, updated_dt)
SELECT %(market)s, meter_id, zone_id, p, val, rd, nullif(reader, ''), nullif(note, ''), prev_reading,
       diff * multiplier, rolled, false,
       coalesce(diff * multiplier > 3 * median, false),
       CASE WHEN diff * multiplier > 3 * median THEN '用量超过近 6 期用量中位数的 3 倍，请复核' END,
       now(), now()
FROM computed
WHERE meter_id IS NOT NULL AND p IS NOT NULL AND val IS NOT NULL AND nth = 1 AND val <= max_reading
      AND diff IS NOT NULL AND p <= date_trunc('month', current_date)
ON CONFLICT (meter_id, period) DO UPDATE SET
    reading = excluded.reading, read_date = excluded.read_date, reader = excluded.reader, note = excluded.note,
    previous_reading = excluded.previous_reading, consumption = excluded.consumption,
    is_rollover = excluded.is_rollover, is_flagged = excluded.is_flagged, flag_reason = excluded.flag_reason,
    updated_dt = excluded.updated_dt
WHERE meter_readings.bill_id IS NULL
  AND (meter_readings.reading, meter_readings.read_date, meter_readings.reader, meter_readings.note)
      IS DISTINCT FROM (excluded.reading, excluded.read_date, excluded.reader, excluded.note);
"""

BASELINE_REPORT = r"""
COPY (
    SELECT meter_number, period, reading, read_date, reader, note,
           CASE WHEN meter_id IS NULL THEN '表号 ' || meter_number || ' 不存在'
                WHEN p IS NULL THEN '账期格式错误'
                WHEN val IS NULL THEN '读数不是有效数字'
                WHEN nth > 1 THEN '文件中重复'
                WHEN val > max_reading THEN '读数超过最大读数'
                ELSE '读数低于上期读数，且不是合理的表码翻转' END
    FROM computed
    WHERE NOT (meter_id IS NOT NULL AND p IS NOT NULL AND val IS NOT NULL AND nth = 1 AND val <= max_reading
               AND diff IS NOT NULL)
    ORDER BY line_no
) TO STDOUT WITH (FORMAT csv)
"""


def run_baseline(csv_path: str, market_id: int) -> dict:
    """The same work as one hand-written SQL pipeline over psycopg (COPY in, INSERT ... SELECT, COPY out)."""
    import psycopg

    start = time.perf_counter()
    rejected = 0
    with psycopg.connect(_dsn()) as conn:
        with conn.cursor() as cur:
            cur.execute(BASELINE_SQL)
            with open(csv_path, "rb") as fh:
                fh.readline()  # header
                with cur.copy("COPY raw (meter_number, period, reading, read_date, reader, note) "
                              "FROM STDIN WITH (FORMAT csv, ENCODING 'GBK')") as copy:
                    while chunk := fh.read(1 << 20):
                        copy.write(chunk)
            for statement in BASELINE_CHECK.split(";\n\n"):
                cur.execute(statement, {"market": market_id})
            inserted = cur.rowcount
            with open(csv_path + ".baseline-errors.csv", "wb") as out:
                out.write("\ufeff表号,账期,读数,抄表日期,抄表人,备注,错误原因\r\n".encode("utf-8"))
                with cur.copy(BASELINE_REPORT) as copy:
                    for data in copy:
                        out.write(bytes(data))
                        rejected += bytes(data).count(b"\n")
        conn.commit()
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb(),
            "counts": {"inserted": inserted, "rejected": rejected}}


def _child(phase: str, csv_path: Path, market_id: int, rows: int = 0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--csv", str(csv_path), "--market-id", str(market_id),
         "--rows", str(rows or 200_000)],
        capture_output=True, text=True, env=os.environ.copy(),
    )
    if out.returncode:
        raise SystemExit(f"{phase} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase", choices=["prepare", "service", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--market-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgresql"):
        raise SystemExit("set DATABASE_URL=postgresql+psycopg://... (a benchmark database)")
    if args.phase == "prepare":
        info = prepare(args.rows, Path(args.csv))
        print(json.dumps({k: info[k] for k in ("market_id", "bad", "rows")}))
        return
    if args.phase == "service":
        print(json.dumps(run_service(args.csv)))
        return
    if args.phase == "baseline":
        print(json.dumps(run_baseline(args.csv, args.market_id)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-readings-"))
    csv_path = workdir / f"readings-{PERIOD}.csv"
    # Every step runs in its own child process: this parent stays small, so each child's
    # ru_maxrss (inherited from the parent at fork) is the child's own peak.
    info = _child("prepare", csv_path, 0, rows=args.rows)
    size_mb = csv_path.stat().st_size / 1e6
    print(f"file: {csv_path} ({info['rows']} meters, {size_mb:.1f} MB, GBK, CRLF); "
          f"bad rows planted: {info['bad']}")
    runs = {"baseline": [], "service": []}
    for round_no in range(1, args.rounds + 1):
        for phase in ("baseline", "service"):
            reset(info["market_id"])
            figures = _child(phase, csv_path, info["market_id"])
            print(f"round {round_no} {phase:8s}: {figures['seconds']:6.2f} s, peak {figures['peak_mb']:.0f} MB, "
                  f"{figures['counts']}")
            runs[phase].append(figures)
    reset(info["market_id"])
    _child("service", csv_path, info["market_id"])  # a first import, then the same file again
    again = _child("service", csv_path, info["market_id"])
    best = {phase: min(r["seconds"] for r in runs[phase]) for phase in runs}
    median = {phase: statistics.median(r["seconds"] for r in runs[phase]) for phase in runs}
    peak = {phase: max(r["peak_mb"] for r in runs[phase]) for phase in runs}
    print()
    print(f"service  (parse, validate, store, report): best {best['service']:.2f} s, "
          f"median {median['service']:.2f} s, peak memory {peak['service']:.0f} MB")
    print(f"baseline (COPY + one INSERT ... SELECT):   best {best['baseline']:.2f} s, "
          f"median {median['baseline']:.2f} s, peak memory {peak['baseline']:.0f} MB")
    print(f"ratio service / baseline: best {best['service'] / best['baseline']:.2f}x, "
          f"median {median['service'] / median['baseline']:.2f}x")
    print(f"re-import of the same file (all unchanged): {again['seconds']:.2f} s, "
          f"peak {again['peak_mb']:.0f} MB, {again['counts']}")


if __name__ == "__main__":
    main()
