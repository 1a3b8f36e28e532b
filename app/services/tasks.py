"""The daily task list: what needs doing today in the zones a staff member may see."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User

from app.extensions import db
from app.models import Lease, Merchant, Meter, Unit, Zone
from app.models.bills import Bill
from app.models.enums import LeaseStatus
from app.models.readings import MeterReading
from app.models.tickets import Ticket, TicketUrgency
from app.services import tickets as ticket_rules
from app.services.billing import overdue_clause
from app.services.scope import scope_query
from app.utils.dates import now_utc, period_end, to_local, today_local

#: Leases that still run (a lease past its end date in one of these needs renewing or ending).
RUNNING_LEASE_STATUSES = (LeaseStatus.active, LeaseStatus.expiring)
#: How far ahead the list warns about leases ending.
EXPIRY_WARNING_DAYS = 30
#: Rows shown per section; the rest is behind a "more" link.
DEFAULT_LIMIT = 50


@dataclass
class Section:
    """One block of the task list: a total and the first rows."""

    count: int = 0
    rows: list = field(default_factory=list)

    @property
    def has_more(self) -> bool:
        return self.count > len(self.rows)


@dataclass
class TaskList:
    today: date
    period: date
    meters: Section
    #: [(zone_id, zone_name, unread, active)] for the meters section.
    meters_by_zone: list
    overdue: Section
    overdue_fen: int
    expiring: Section
    lapsed: Section
    #: Open tickets: (id, number, kind, urgency, status, title, merchant, unit code, zone, assignee,
    #: due time in Asia/Shanghai, is_overdue) rows; overdue first, then urgent, then the soonest due.
    tickets: Section = field(default_factory=Section)
    tickets_overdue: int = 0


def current_period(today: date | None = None) -> date:
    """The meter-reading period in progress: the first day of this month (Asia/Shanghai)."""
    today = today or today_local()
    return today.replace(day=1)


def _count(query) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())) or 0


def meters_to_read(user, period: date, limit: int = DEFAULT_LIMIT) -> tuple[Section, list]:
    """Active meters in the user's zones with no reading for the period yet, and counts per zone."""
    # Meters installed after the period do not need a reading for it.
    in_service = sa.and_(Meter.is_active.is_(True), Meter.install_date <= period_end(period))
    reading = sa.and_(MeterReading.meter_id == Meter.id, MeterReading.period == period)
    rows_query = scope_query(
        sa.select(Meter.id, Meter.number, Meter.meter_type, Unit.code, Zone.name)
        .join(Zone, Zone.id == Meter.zone_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(MeterReading, reading)
        .where(in_service, MeterReading.id.is_(None))
        .order_by(Zone.code, Meter.number),
        Meter,
        user,
    )
    per_zone = db.session.execute(
        scope_query(
            sa.select(Zone.id, Zone.name, sa.func.count(Meter.id), sa.func.count(MeterReading.id))
            .select_from(Meter)
            .join(Zone, Zone.id == Meter.zone_id)
            .outerjoin(MeterReading, reading)
            .where(in_service)
            .group_by(Zone.id, Zone.name, Zone.code)
            .order_by(Zone.code),
            Meter,
            user,
        )
    ).all()
    by_zone = [(zone_id, name, active - read, active) for zone_id, name, active, read in per_zone]
    section = Section(
        count=sum(row[2] for row in by_zone),
        rows=db.session.execute(rows_query.limit(limit)).all(),
    )
    return section, by_zone


def overdue_merchants(user, today: date, limit: int = DEFAULT_LIMIT) -> tuple[Section, int]:
    """Merchants with overdue open bills in the user's zones, oldest due date first, and the total owed."""
    outstanding = sa.func.sum(Bill.outstanding_fen)
    oldest = sa.func.min(Bill.due_date)
    query = scope_query(
        sa.select(
            Merchant.id,
            Merchant.name,
            Zone.name,
            sa.func.count(Bill.id),
            oldest,
            outstanding,
        )
        .select_from(Bill)
        .join(Merchant, Merchant.id == Bill.merchant_id)
        .join(Zone, Zone.id == Bill.zone_id)
        .where(overdue_clause(today))
        .group_by(Merchant.id, Merchant.name, Zone.name)
        .having(outstanding > 0)
        .order_by(oldest, Merchant.name),
        Bill,
        user,
    )
    per_merchant = query.with_only_columns(Merchant.id, outstanding.label("owed")).order_by(None).subquery()
    totals = db.session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(per_merchant.c.owed), 0))
    ).one()
    rows = [
        (merchant_id, name, zone, bills, due, int(owed), (today - due).days)
        for merchant_id, name, zone, bills, due, owed in db.session.execute(query.limit(limit))
    ]
    return Section(count=totals[0], rows=rows), int(totals[1])


def expiring_leases(user, today: date, days: int = EXPIRY_WARNING_DAYS, limit: int = DEFAULT_LIMIT) -> Section:
    """Running leases in the user's zones that end within the next `days` days, soonest first."""
    query = _lease_rows(user).where(Lease.end_date >= today, Lease.end_date <= today + timedelta(days=days))
    rows = [(*row, (row[4] - today).days) for row in db.session.execute(query.limit(limit))]
    return Section(count=_count(query), rows=rows)


def lapsed_leases(user, today: date, limit: int = DEFAULT_LIMIT) -> Section:
    """Leases in the user's zones whose end date has passed but that are still marked running."""
    query = _lease_rows(user).where(Lease.end_date < today)
    rows = [(*row, (today - row[4]).days) for row in db.session.execute(query.limit(limit))]
    return Section(count=_count(query), rows=rows)


def _lease_rows(user):
    return scope_query(
        sa.select(Lease.id, Lease.code, Merchant.name, Zone.name, Lease.end_date, Lease.status)
        .join(Merchant, Merchant.id == Lease.merchant_id)
        .join(Zone, Zone.id == Lease.zone_id)
        .where(Lease.status.in_(RUNNING_LEASE_STATUSES))
        .order_by(Lease.end_date, Lease.code),
        Lease,
        user,
    )


def open_tickets(user, now: datetime | None = None, limit: int = DEFAULT_LIMIT) -> tuple[Section, int]:
    """Open tickets the user may see, overdue first, then urgent, then the soonest due; and how many are overdue."""
    now = now or now_utc()
    is_overdue = Ticket.due_dt < now
    query = (
        sa.select(
            Ticket.id, Ticket.number, Ticket.kind, Ticket.urgency, Ticket.status, Ticket.title, Merchant.name,
            Unit.code, Zone.name, User.last_name, User.first_name, User.username, Ticket.due_dt,
        )
        .join(Merchant, Merchant.id == Ticket.merchant_id)
        .outerjoin(Unit, Unit.id == Ticket.unit_id)
        .outerjoin(Zone, Zone.id == Ticket.zone_id)
        .outerjoin(User, User.id == Ticket.assignee_id)
        .where(ticket_rules.open_tickets_clause(now))
        .order_by(
            sa.case((is_overdue, 0), else_=1),
            sa.case((Ticket.urgency == TicketUrgency.urgent, 0), else_=1),
            Ticket.due_dt,
            Ticket.id,
        )
    )
    condition = ticket_rules.visible_tickets_clause(user)
    if condition is not None:
        query = query.where(condition)
    due = query.with_only_columns(Ticket.due_dt.label("due_dt")).order_by(None).subquery()
    count, overdue = db.session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((due.c.due_dt < now, 1), else_=0)), 0))
        .select_from(due)
    ).one()
    rows = [
        (*row[:9], f"{last or ''}{first or ''}".strip() or (username or ""), to_local(due_dt), due_dt < now)
        for *row, last, first, username, due_dt in db.session.execute(query.limit(limit))
    ]
    return Section(count=int(count), rows=rows), int(overdue)


def build_task_list(
    user, today: date | None = None, period: date | None = None, limit: int = DEFAULT_LIMIT
) -> TaskList:
    """Everything on the user's task list for today, restricted to the zones they may see."""
    today = today or today_local()
    period = period or current_period(today)
    meters, meters_by_zone = meters_to_read(user, period, limit)
    overdue, overdue_fen = overdue_merchants(user, today, limit)
    tickets, tickets_overdue = open_tickets(user, limit=limit)
    return TaskList(
        today=today,
        period=period,
        meters=meters,
        meters_by_zone=meters_by_zone,
        overdue=overdue,
        overdue_fen=overdue_fen,
        expiring=expiring_leases(user, today, limit=limit),
        lapsed=lapsed_leases(user, today, limit=limit),
        tickets=tickets,
        tickets_overdue=tickets_overdue,
    )
