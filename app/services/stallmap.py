"""The stall map: a zone's units at their plan positions, with status, tenant and arrears."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.orm import lazyload

from app.extensions import db
from app.models import Lease, Merchant, Unit, Zone, lease_units
from app.models.bills import Bill
from app.models.enums import LeaseStatus, UnitStatus
from app.services.billing import overdue_clause
from app.services.exceptions import NotFound
from app.services.scope import scope_query
from app.utils.dates import today_local

#: Lease statuses under which a lease's merchant occupies its units.
CURRENT_LEASE_STATUSES = (LeaseStatus.active, LeaseStatus.expiring)
#: Legend order.
STATUS_ORDER = (UnitStatus.vacant, UnitStatus.leased, UnitStatus.reserved, UnitStatus.renovating)


@dataclass(frozen=True)
class MapUnit:
    """One unit as drawn on the map (plan units are metres from the top-left corner)."""

    id: int
    code: str
    status: UnitStatus
    area_m2: Decimal
    x: Decimal
    y: Decimal
    w: Decimal
    h: Decimal
    #: [(x, y), ...] when the unit has a plan polygon, else None (draw the rectangle).
    points: list | None
    merchant_id: int | None
    merchant_name: str | None
    lease_id: int | None
    lease_code: str | None
    #: Outstanding fen on overdue bills of the unit's leases (0 = no arrears).
    arrears_fen: int = 0

    @property
    def area_text(self) -> str:
        """The area without trailing zeros ("12", "12.5")."""
        return format(self.area_m2.normalize(), "f") if self.area_m2 is not None else ""

    @property
    def label_x(self) -> Decimal:
        """Where the unit code is centred horizontally."""
        if self.points:
            return sum(p[0] for p in self.points) / len(self.points)
        return self.x + self.w / 2

    @property
    def label_y(self) -> Decimal:
        """Where the unit code is centred vertically."""
        if self.points:
            return sum(p[1] for p in self.points) / len(self.points)
        return self.y + self.h / 2

    @property
    def font_size(self) -> Decimal:
        """A code size that fits the box: half its height, at most its width per character."""
        if self.points:
            xs = [p[0] for p in self.points]
            ys = [p[1] for p in self.points]
            width, height = max(xs) - min(xs), max(ys) - min(ys)
        else:
            width, height = self.w, self.h
        by_width = width / (Decimal(len(self.code) or 1) * Decimal("0.62"))
        return max(min(height * Decimal("0.5"), by_width), Decimal("0.3")).quantize(Decimal("0.01"))

    @property
    def badge(self) -> tuple[Decimal, Decimal, Decimal]:
        """Centre x, centre y and radius of the arrears dot in the box's top-right corner."""
        size = self.font_size
        if self.points:
            xs = [p[0] for p in self.points]
            ys = [p[1] for p in self.points]
            right, top = max(xs), min(ys)
        else:
            right, top = self.x + self.w, self.y
        return right - size * Decimal("0.45"), top + size * Decimal("0.45"), size * Decimal("0.3")

    @property
    def points_attr(self) -> str:
        """The polygon's points as an SVG attribute value."""
        return " ".join(f"{x},{y}" for x, y in self.points or [])


@dataclass
class StallMap:
    """A zone's plan with its units, status counts and arrears summary."""

    zone: Zone
    units: list[MapUnit]
    counts: dict = field(default_factory=dict)
    unplaced: list[MapUnit] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.zone.plan_width or 100

    @property
    def height(self) -> int:
        return self.zone.plan_height or 60

    @property
    def total(self) -> int:
        return len(self.units) + len(self.unplaced)

    @property
    def arrears_units(self) -> list[MapUnit]:
        return [u for u in self.units + self.unplaced if u.arrears_fen > 0]

    @property
    def arrears_fen(self) -> int:
        return sum(u.arrears_fen for u in self.arrears_units)


def visible_zones(user) -> list[Zone]:
    """The zones the user may open on the stall map, by market and code."""
    query = sa.select(Zone).options(lazyload(Zone.managers)).order_by(Zone.market_id, Zone.code)
    return list(db.session.scalars(scope_query(query, Zone, user)))


def parse_polygon(text: str | None) -> list | None:
    """Parse "x1,y1 x2,y2 ..." into [(Decimal, Decimal), ...]; None if empty or malformed."""
    if not text or not text.strip():
        return None
    points = []
    try:
        for pair in text.replace(";", " ").split():
            x, y = pair.split(",")
            points.append((Decimal(x), Decimal(y)))
    except (ValueError, InvalidOperation):
        return None
    return points if len(points) >= 3 else None


def unit_arrears(zone_id: int) -> dict[int, int]:
    """Outstanding fen of the zone's overdue bills, per unit (via the bills' leases)."""
    query = (
        sa.select(lease_units.c.unit_id, sa.func.sum(Bill.outstanding_fen))
        .select_from(Bill)
        .join(lease_units, lease_units.c.lease_id == Bill.lease_id)
        .where(
            Bill.zone_id == zone_id,
            overdue_clause(today_local()),
        )
        .group_by(lease_units.c.unit_id)
    )
    return {unit_id: int(total) for unit_id, total in db.session.execute(query) if total and total > 0}


def build_stall_map(zone_id: int, user) -> StallMap:
    """The zone's units with their current tenant and arrears; NotFound outside the user's zones."""
    zone = db.session.scalar(
        scope_query(sa.select(Zone).options(lazyload(Zone.managers)).where(Zone.id == zone_id), Zone, user)
    )
    if zone is None:
        raise NotFound("片区不存在或无权查看")
    current_lease = sa.and_(
        Lease.id == lease_units.c.lease_id,
        Lease.status.in_(CURRENT_LEASE_STATUSES),
    )
    rows = db.session.execute(
        sa.select(
            Unit.id, Unit.code, Unit.status, Unit.area_m2, Unit.plan_x, Unit.plan_y, Unit.plan_w,
            Unit.plan_h, Unit.plan_polygon, Lease.id, Lease.code, Merchant.id, Merchant.name,
        )
        .select_from(Unit)
        .outerjoin(lease_units, lease_units.c.unit_id == Unit.id)
        .outerjoin(Lease, current_lease)
        .outerjoin(Merchant, Merchant.id == Lease.merchant_id)
        .where(Unit.zone_id == zone.id)
        # A unit's history may hold several leases: the current one sorts first.
        .order_by(Unit.code, Unit.id, Lease.id.is_(None), Lease.start_date.desc())
    ).all()
    arrears = unit_arrears(zone.id)
    stall_map = StallMap(zone=zone, units=[], counts={status: 0 for status in STATUS_ORDER})
    seen = set()
    for (unit_id, code, status, area, x, y, w, h, polygon, lease_id, lease_code,
         merchant_id, merchant_name) in rows:
        if unit_id in seen:
            continue
        seen.add(unit_id)
        status = UnitStatus(status)
        unit = MapUnit(
            id=unit_id, code=code, status=status, area_m2=area,
            x=x if x is not None else Decimal(0), y=y if y is not None else Decimal(0),
            w=w or Decimal(0), h=h or Decimal(0), points=parse_polygon(polygon),
            merchant_id=merchant_id, merchant_name=merchant_name, lease_id=lease_id,
            lease_code=lease_code, arrears_fen=arrears.get(unit_id, 0),
        )
        stall_map.counts[status] = stall_map.counts.get(status, 0) + 1
        placed = unit.points or (x is not None and y is not None and unit.w > 0 and unit.h > 0)
        (stall_map.units if placed else stall_map.unplaced).append(unit)
    return stall_map
