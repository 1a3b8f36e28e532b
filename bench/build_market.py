"""Build (idempotently) the benchmark market: 100,000 units and 200,000 meters on PostgreSQL.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/market_steward_h4_bench \
        python bench/build_market.py [--stalls 100000]

It creates the tables it needs (a throw-away benchmark database, not a migrated one) and runs the
demo seed without its history (no readings, bills or payments), which bulk-inserts units, merchants,
leases and two meters per unit (water and electricity: meter numbers W<unit> and E<unit>, e.g. EA00001).
Running it again changes nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("DEMO_PASSWORD", "bench-password-1")


def build(stalls: int) -> dict:
    """Create the tables and seed the market (once); returns the seed result and the seconds taken."""
    import sqlalchemy as sa

    from app import create_app
    from app.extensions import db
    from app.models import Meter, Unit
    from app.services.demo import seed_demo

    app = create_app("development")
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            raise SystemExit("bench/build_market.py needs DATABASE_URL pointing at PostgreSQL")
        db.create_all()
        start = time.perf_counter()
        result = seed_demo(stalls=stalls, history_months=0)  # master data only: the benchmarks bill it themselves
        db.session.commit()
        seconds = time.perf_counter() - start
        units = db.session.scalar(sa.select(sa.func.count()).select_from(Unit))
        meters = db.session.scalar(sa.select(sa.func.count()).select_from(Meter))
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
    return {"created": result["created"], "seconds": seconds, "units": units, "meters": meters}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalls", type=int, default=100_000)
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgresql"):
        raise SystemExit("set DATABASE_URL=postgresql+psycopg://... (a benchmark database)")
    info = build(args.stalls)
    state = "built" if info["created"] else "already there"
    print(f"market {state}: {info['units']} units, {info['meters']} meters ({info['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
