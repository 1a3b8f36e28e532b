"""The SQL of the billing run: set-based statements that compute every bill line of a period.

Each statement is one INSERT ... SELECT into the staging table (fixed fees, per-m² fees,
metered fees at flat or tiered prices, one-off charges). The same text
runs on PostgreSQL and SQLite; the few functions that differ come from `SqlDialect`.

Money arithmetic is exact on both backends: rates, quantities and areas (Numeric(16, 4)) are
scaled to integers (x 10,000) and multiplied as BIGINT, then divided with half-up rounding
(`div_half_up`). PostgreSQL would be exact with numeric as well, but SQLite stores Numeric
as REAL, whose round() is not exact; integer arithmetic gives both backends the same fen.
"""
from __future__ import annotations

#: Kinds of staged lines, in the order they appear on a bill (after the fee item's sort order).
LINE_KINDS = ("fixed", "per_area", "metered", "public", "charge")
KIND_RANK = {kind: rank for rank, kind in enumerate(LINE_KINDS)}
#: The staging table of previews; a posting stages into a temporary table of the same shape.
STAGING = "billing_staged_lines"
#: Charges come after every fee line.
CHARGE_SORT_KEY = 10**8

STAGED_COLUMNS = (
    "batch, market_id, period, line_kind, sort_key, lease_id, merchant_id, zone_id, fee_item_id, "
    "unit_id, meter_id, reading_id, charge_id, description, quantity, unit_label, rate_fen, "
    "amount_fen, service_start, service_end, created_dt"
)


class SqlDialect:
    """The handful of SQL fragments that differ between PostgreSQL and SQLite."""

    def __init__(self, name: str):
        self.name = name
        self.pg = name == "postgresql"

    def greatest(self, *args: str) -> str:
        return f"{'greatest' if self.pg else 'max'}({', '.join(args)})"

    def least(self, *args: str) -> str:
        return f"{'least' if self.pg else 'min'}({', '.join(args)})"

    def day_diff(self, later: str, earlier: str) -> str:
        """Whole days from `earlier` to `later` (dates)."""
        if self.pg:
            return f"({later} - {earlier})"
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"

    def month_index(self, day: str) -> str:
        """year * 12 + month of a date, as an integer."""
        if self.pg:
            return f"(CAST(EXTRACT(YEAR FROM {day}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {day}) AS INTEGER))"
        return f"(CAST(strftime('%Y', {day}) AS INTEGER) * 12 + CAST(strftime('%m', {day}) AS INTEGER))"

    @staticmethod
    def scaled(expr: str) -> str:
        """A Numeric(16, 4) value as an exact integer of ten-thousandths."""
        return f"CAST(round(({expr}) * 10000) AS BIGINT)"

    def num_text(self, expr: str) -> str:
        """A quantity as text without trailing zeros: 250.0000 -> '250', 12.5000 -> '12.5'."""
        if self.pg:
            return f"CAST(trim_scale({expr}) AS TEXT)"
        return f"CAST({expr} AS TEXT)"

    def date_text(self, expr: str) -> str:
        if self.pg:
            return f"to_char({expr}, 'YYYY-MM-DD')"
        return f"({expr})"

    def pad6(self, expr: str) -> str:
        """An integer zero-padded to at least six digits."""
        if self.pg:
            return f"(CASE WHEN ({expr}) < 1000000 THEN lpad(CAST({expr} AS TEXT), 6, '0') ELSE CAST({expr} AS TEXT) END)"
        return f"printf('%06d', {expr})"

    @staticmethod
    def div_half_up(n: str, d: str) -> str:
        """Integer n / d rounded half-up (half away from zero for negative n); d > 0."""
        pos = lambda x: f"((({x}) * 2 + ({d})) / (({d}) * 2))"  # noqa: E731
        return f"(CASE WHEN ({n}) >= 0 THEN {pos(n)} ELSE -{pos(f'-({n})')} END)"

    @staticmethod
    def prorate(n: str, scale: str, days: str, window_days: str) -> str:
        """round_half_up(n x days / (scale x window_days)) without overflowing BIGINT.

        n = q x D + r with D = scale x window_days, so the result is q x days plus the
        rounded r x days / D; r x days stays far below 2^63.
        """
        d = f"(CAST({scale} AS BIGINT) * ({window_days}))"

        def pos(x):
            return f"((({x}) / {d}) * ({days}) + ((({x}) % {d}) * ({days}) * 2 + {d}) / ({d} * 2))"

        return f"(CASE WHEN ({n}) >= 0 THEN {pos(n)} ELSE -{pos(f'-({n})')} END)"


def ctes(d: SqlDialect) -> dict[str, str]:
    """Named common table expressions shared by the statements.

    el   leases to bill: not draft, overlapping the period, without a (non-void) regular bill yet
    cf   the price row in force per (lease, fee item): latest effective_from <= period end
    lw   el leases whose cycle starts this month, with their billing window and days in it
    cov  every lease covering the period per unit, newest first (rn = 1 owns the unit's meters)
    mr   readings of the period, not billed yet, of meters on units owned by an el lease
         with a metered fee item of the meter's type
    """
    months = "(CASE el.billing_cycle WHEN 'quarterly' THEN 3 WHEN 'yearly' THEN 12 ELSE 1 END)"
    window_end = (
        "(CASE el.billing_cycle WHEN 'quarterly' THEN :window_end_3 WHEN 'yearly' THEN :window_end_12 "
        "ELSE :period_end END)"
    )
    window_days = (
        "(CASE el.billing_cycle WHEN 'quarterly' THEN {wd3} WHEN 'yearly' THEN {wd12} ELSE {wd1} END)"
    )
    svc_start = d.greatest("el.start_date", ":period")
    svc_end = d.least("el.end_date", window_end)
    return {
        "el": f"""el AS (
    SELECT l.id AS lease_id, l.code AS lease_code, l.merchant_id, l.zone_id, l.start_date, l.end_date,
           l.billing_cycle
    FROM leases l
    WHERE l.market_id = :market_id AND l.status <> 'draft'
      AND l.start_date <= :period_end AND l.end_date >= :period
      AND NOT EXISTS (
        SELECT 1 FROM bills b
        WHERE b.lease_id = l.id AND b.period = :period AND b.kind = 'regular' AND b.status <> 'void'
      )
)""",
        "cf": """cf AS (
    SELECT lf.lease_id, lf.fee_item_id, lf.rate_fen
    FROM lease_fees lf
    WHERE lf.market_id = :market_id AND lf.effective_from <= :period_end
      AND NOT EXISTS (
        SELECT 1 FROM lease_fees n
        WHERE n.lease_id = lf.lease_id AND n.fee_item_id = lf.fee_item_id
          AND n.effective_from > lf.effective_from AND n.effective_from <= :period_end
      )
)""",
        "lw": f"""lw AS (
    SELECT el.lease_id, el.merchant_id, el.zone_id,
           {months} AS months,
           {svc_start} AS svc_start,
           {svc_end} AS svc_end,
           {d.day_diff(svc_end, svc_start)} + 1 AS days,
           {window_days} AS window_days
    FROM el
    WHERE (:period_index - {d.month_index('el.start_date')}) % {months} = 0
)""",
        "cov": f"""cov AS (
    SELECT lu.unit_id, lu.lease_id,
           ROW_NUMBER() OVER (PARTITION BY lu.unit_id ORDER BY l.start_date DESC, l.id DESC) AS rn
    FROM lease_units lu
    JOIN leases l ON l.id = lu.lease_id
    WHERE l.market_id = :market_id AND l.status <> 'draft'
      AND l.start_date <= :period_end AND l.end_date >= :period
)""",
        "mr": """mr AS (
    SELECT el.lease_id, el.merchant_id, el.zone_id, fi.id AS fee_item_id, fi.name AS fee_name,
           fi.sort_order, m.id AS meter_id, m.number AS meter_number, m.unit_id, m.unit_label,
           r.id AS reading_id, r.previous_reading, r.reading, r.consumption, r.is_rollover,
           COALESCE(cf.rate_fen, fi.default_rate_fen) AS flat_rate
    FROM cov
    JOIN el ON el.lease_id = cov.lease_id
    JOIN meters m ON m.unit_id = cov.unit_id
    JOIN meter_readings r ON r.meter_id = m.id AND r.period = :period
    JOIN cf ON cf.lease_id = el.lease_id
    JOIN fee_items fi ON fi.id = cf.fee_item_id
    WHERE cov.rn = 1 AND fi.pricing_mode = 'metered' AND fi.meter_type = m.meter_type AND fi.is_active
      AND r.billed_dt IS NULL
)""",
    }


def with_clause(d: SqlDialect, names: list[str], window_days: dict[int, int]) -> str:
    parts = ctes(d)
    body = ",\n".join(parts[name] for name in names)
    body = body.replace("{wd1}", str(window_days[1])).replace("{wd3}", str(window_days[3]))
    body = body.replace("{wd12}", str(window_days[12]))
    return "WITH " + body


def _readings_text(d: SqlDialect) -> str:
    return (
        "mr.fee_name || ' ' || mr.meter_number || ' 上次 ' || " + d.num_text("mr.previous_reading")
        + " || ' 本次 ' || " + d.num_text("mr.reading")
        + " || CASE WHEN mr.is_rollover THEN ' (翻表)' ELSE '' END"
        + " || ' 用量 ' || " + d.num_text("mr.consumption") + " || COALESCE(mr.unit_label, '')"
    )


def fixed_lines(d: SqlDialect, window_days: dict[int, int], target: str = STAGING) -> str:
    """Fixed fees: rate x months of the cycle x days in lease / days in window."""
    rate = "COALESCE(cf.rate_fen, fi.default_rate_fen)"
    amount = d.prorate(f"{d.scaled(rate)} * lw.months", "10000", "lw.days", "lw.window_days")
    return f"""{with_clause(d, ['el', 'cf', 'lw'], window_days)}
INSERT INTO {target} ({STAGED_COLUMNS})
SELECT :batch, :market_id, :period, 'fixed', fi.sort_order * 10 + {KIND_RANK['fixed']},
       lw.lease_id, lw.merchant_id, lw.zone_id, fi.id, NULL, NULL, NULL, NULL,
       substr(fi.name || ' ' || {d.date_text('lw.svc_start')} || '~' || {d.date_text('lw.svc_end')}
              || CASE WHEN lw.days < lw.window_days
                      THEN ' (按天 ' || lw.days || '/' || lw.window_days || ')' ELSE '' END, 1, 200),
       lw.months, '月', {rate}, {amount}, lw.svc_start, lw.svc_end, :now
FROM lw
JOIN cf ON cf.lease_id = lw.lease_id
JOIN fee_items fi ON fi.id = cf.fee_item_id
WHERE fi.pricing_mode = 'fixed' AND fi.is_active"""


def per_area_lines(d: SqlDialect, window_days: dict[int, int], target: str = STAGING) -> str:
    """Per-m² fees: sum of the lease's unit areas x rate x months x days / window days."""
    rate = "COALESCE(cf.rate_fen, fi.default_rate_fen)"
    amount = d.prorate(f"{d.scaled(rate)} * la.area4 * lw.months", "100000000", "lw.days", "lw.window_days")
    return f"""{with_clause(d, ['el', 'cf', 'lw'], window_days)},
la AS (
    SELECT lu.lease_id, SUM(u.area_m2) AS area, CAST(SUM({d.scaled('u.area_m2')}) AS BIGINT) AS area4
    FROM lease_units lu
    JOIN units u ON u.id = lu.unit_id
    WHERE lu.lease_id IN (SELECT lease_id FROM lw)
    GROUP BY lu.lease_id
)
INSERT INTO {target} ({STAGED_COLUMNS})
SELECT :batch, :market_id, :period, 'per_area', fi.sort_order * 10 + {KIND_RANK['per_area']},
       lw.lease_id, lw.merchant_id, lw.zone_id, fi.id, NULL, NULL, NULL, NULL,
       substr(fi.name || ' ' || {d.num_text('la.area')} || 'm² ' || {d.date_text('lw.svc_start')} || '~'
              || {d.date_text('lw.svc_end')}
              || CASE WHEN lw.months > 1 THEN ' (' || lw.months || '个月)' ELSE '' END
              || CASE WHEN lw.days < lw.window_days
                      THEN ' (按天 ' || lw.days || '/' || lw.window_days || ')' ELSE '' END, 1, 200),
       la.area, 'm²', {rate}, {amount}, lw.svc_start, lw.svc_end, :now
FROM lw
JOIN la ON la.lease_id = lw.lease_id
JOIN cf ON cf.lease_id = lw.lease_id
JOIN fee_items fi ON fi.id = cf.fee_item_id
WHERE fi.pricing_mode = 'per_area' AND fi.is_active"""


def metered_lines(d: SqlDialect, window_days: dict[int, int], tier_text_case: str, target: str = STAGING) -> str:
    """Metered fees, one line per reading: tiered items split the consumption over their
    [from_qty, to_qty) bands, each at its rate; items without tiers use the flat price
    (the lease's rate, else the item's default)."""
    c4 = d.scaled("mr.consumption")
    band = d.greatest("0", d.least(c4, f"COALESCE({d.scaled('t.to_qty')}, {c4})") + f" - {d.scaled('t.from_qty')}")
    tiered = d.div_half_up("ta.amount8", "100000000")
    flat = d.div_half_up(f"{c4} * {d.scaled('mr.flat_rate')}", "100000000")
    return f"""{with_clause(d, ['el', 'cf', 'cov', 'mr'], window_days)},
ta AS (
    SELECT t.fee_item_id, mr.reading_id,
           CAST(SUM({band} * {d.scaled('t.rate_fen')}) AS BIGINT) AS amount8
    FROM mr
    JOIN fee_tiers t ON t.fee_item_id = mr.fee_item_id
    GROUP BY t.fee_item_id, mr.reading_id
)
INSERT INTO {target} ({STAGED_COLUMNS})
SELECT :batch, :market_id, :period, 'metered', mr.sort_order * 10 + {KIND_RANK['metered']},
       mr.lease_id, mr.merchant_id, mr.zone_id, mr.fee_item_id, mr.unit_id, mr.meter_id, mr.reading_id, NULL,
       substr({_readings_text(d)} || CASE WHEN ta.reading_id IS NULL THEN '' ELSE {tier_text_case} END, 1, 200),
       mr.consumption, mr.unit_label,
       CASE WHEN ta.reading_id IS NULL THEN mr.flat_rate END,
       CASE WHEN ta.reading_id IS NULL THEN {flat} ELSE {tiered} END,
       :period, :period_end, :now
FROM mr
LEFT JOIN ta ON ta.reading_id = mr.reading_id AND ta.fee_item_id = mr.fee_item_id"""


def charge_lines(d: SqlDialect, window_days: dict[int, int], target: str = STAGING) -> str:
    """Pending one-off charges: on the bill of their lease, else of the merchant's first lease billed."""
    return f"""{with_clause(d, ['el'], window_days)},
tg AS (
    SELECT c.id AS charge_id,
           COALESCE((SELECT el.lease_id FROM el WHERE el.lease_id = c.lease_id),
                    (SELECT MIN(el.lease_id) FROM el WHERE el.merchant_id = c.merchant_id)) AS lease_id
    FROM charges c
    WHERE c.market_id = :market_id AND c.status = 'pending'
)
INSERT INTO {target} ({STAGED_COLUMNS})
SELECT :batch, :market_id, :period, 'charge', {CHARGE_SORT_KEY},
       el.lease_id, el.merchant_id, el.zone_id, c.fee_item_id, NULL, NULL, NULL, c.id,
       c.description, 1, NULL, c.amount_fen, c.amount_fen, NULL, NULL, :now
FROM tg
JOIN charges c ON c.id = tg.charge_id
JOIN el ON el.lease_id = tg.lease_id"""


def public_units(d: SqlDialect, window_days: dict[int, int]) -> str:
    """Units (with area) of leases billed now that carry the given metered fee items, by zone."""
    return f"""{with_clause(d, ['el', 'cf', 'cov'], window_days)}
SELECT u.zone_id, u.id AS unit_id, u.code, u.area_m2, el.lease_id, el.merchant_id, cf.fee_item_id
FROM cov
JOIN el ON el.lease_id = cov.lease_id
JOIN units u ON u.id = cov.unit_id
JOIN cf ON cf.lease_id = el.lease_id
WHERE cov.rn = 1 AND cf.fee_item_id IN :fee_item_ids AND u.zone_id IN :zone_ids
ORDER BY u.zone_id, u.code, u.id"""


def missing_readings(d: SqlDialect, window_days: dict[int, int]) -> str:
    """Active meters that a metered fee needs this period and that have no reading (public ones too)."""
    return f"""WITH cf AS (
    SELECT lf.lease_id, lf.fee_item_id
    FROM lease_fees lf
    WHERE lf.market_id = :market_id AND lf.effective_from <= :period_end
      AND NOT EXISTS (
        SELECT 1 FROM lease_fees n
        WHERE n.lease_id = lf.lease_id AND n.fee_item_id = lf.fee_item_id
          AND n.effective_from > lf.effective_from AND n.effective_from <= :period_end
      )
),
{ctes(d)['cov']}
SELECT DISTINCT m.id, m.number, m.meter_type, m.zone_id, z.name AS zone_name, un.code AS unit_code, m.is_public
FROM meters m
JOIN zones z ON z.id = m.zone_id
LEFT JOIN units un ON un.id = m.unit_id
WHERE m.market_id = :market_id AND m.is_active
  AND NOT EXISTS (SELECT 1 FROM meter_readings r WHERE r.meter_id = m.id AND r.period = :period)
  AND (
    (m.is_public AND m.unit_id IS NULL)
    OR EXISTS (
      SELECT 1 FROM cov
      JOIN cf ON cf.lease_id = cov.lease_id
      JOIN fee_items fi ON fi.id = cf.fee_item_id
      WHERE cov.unit_id = m.unit_id AND cov.rn = 1
        AND fi.pricing_mode = 'metered' AND fi.meter_type = m.meter_type AND fi.is_active
    )
  )
ORDER BY z.name, m.number"""


def insert_bills(d: SqlDialect, target: str = STAGING) -> str:
    """One regular bill per lease with staged lines; amount = SUM of its lines; numbered per market."""
    number = f":prefix || {d.pad6('(:base_seq + g.seq)')}"
    return f"""INSERT INTO bills (market_id, number, kind, status, merchant_id, lease_id, zone_id, period,
                   issue_date, due_date, amount_fen, paid_fen, late_fee_fen, run_id, paid_dt,
                   created_dt, updated_dt)
SELECT :market_id, {number}, 'regular', CASE WHEN g.total = 0 THEN 'paid' ELSE 'issued' END,
       g.merchant_id, g.lease_id, g.zone_id, :period, :issue_date, :due_date, g.total, 0, 0, :run_id,
       CASE WHEN g.total = 0 THEN :now END, :now, :now
FROM (
    SELECT s.lease_id, s.merchant_id, s.zone_id, s.total,
           ROW_NUMBER() OVER (ORDER BY z.code, l.code, s.lease_id) AS seq
    FROM (
        SELECT lease_id, merchant_id, zone_id, SUM(amount_fen) AS total
        FROM {target}
        WHERE batch = :batch
        GROUP BY lease_id, merchant_id, zone_id
    ) s
    JOIN leases l ON l.id = s.lease_id
    JOIN zones z ON z.id = s.zone_id
) g"""


BILL_OF_STAGED_LINE = (
    "b.lease_id = s.lease_id AND b.period = :period AND b.kind = 'regular' AND b.status <> 'void' "
    "AND b.run_id = :run_id"
)


def insert_lines(target: str = STAGING) -> str:
    """Copy the staged lines onto their bills, in bill order."""
    return f"""INSERT INTO bill_lines (market_id, bill_id, fee_item_id, unit_id, meter_id, reading_id, charge_id,
                        description, quantity, unit_label, rate_fen, amount_fen, service_start, service_end)
SELECT s.market_id, b.id, s.fee_item_id, s.unit_id, s.meter_id, s.reading_id, s.charge_id,
       s.description, s.quantity, s.unit_label, s.rate_fen, s.amount_fen, s.service_start, s.service_end
FROM {target} s
JOIN bills b ON {BILL_OF_STAGED_LINE}
WHERE s.batch = :batch
ORDER BY b.id, s.sort_key, s.id"""


def mark_readings_billed(target: str = STAGING) -> str:
    """Set bill_id / billed_dt on the readings billed (metered lines)."""
    return f"""UPDATE meter_readings SET bill_id = b.id, billed_dt = :now, updated_dt = :now
FROM {target} s
JOIN bills b ON {BILL_OF_STAGED_LINE}
WHERE s.batch = :batch AND s.line_kind = 'metered' AND meter_readings.id = s.reading_id
  AND meter_readings.billed_dt IS NULL"""


def mark_public_readings_billed(target: str = STAGING) -> str:
    """Public readings are shared by many bills: billed_dt only, bill_id stays empty."""
    return f"""UPDATE meter_readings SET billed_dt = :now, updated_dt = :now
WHERE billed_dt IS NULL
  AND id IN (SELECT reading_id FROM {target} WHERE batch = :batch AND line_kind = 'public')"""


def mark_charges_billed(target: str = STAGING) -> str:
    return f"""UPDATE charges SET status = 'billed', bill_id = b.id, updated_dt = :now
FROM {target} s
JOIN bills b ON {BILL_OF_STAGED_LINE}
WHERE s.batch = :batch AND s.line_kind = 'charge' AND charges.id = s.charge_id AND charges.status = 'pending'"""
