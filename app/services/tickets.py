"""Tickets (工单): merchants file repairs, complaints and suggestions; staff accept, assign,
report progress and resolve them; the merchant confirms (rates) or reopens; resolved tickets
close by themselves after 7 days.

Status rules (docs/tickets.md):
  submitted --accept/assign--> in_progress --resolve--> resolved --rate / 7 days--> closed
  resolved --reopen (merchant, with a note)--> in_progress
  submitted/in_progress --cancel (merchant)--> cancelled; a suggestion can be closed by staff with a reply.
Every change writes a TicketEvent; the audit hooks record the rows. Services flush, never commit.

Photos (JPEG/PNG, checked by their magic bytes) are stored under MARKET_VAR_DIR/uploads/tickets/;
the mini-program reads them through a signed, short-lived URL (photo_token / photo_from_token).
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Lease, Merchant, Unit, WeChatUser, lease_units
from app.models.enums import LeaseStatus
from app.models.tickets import (
    FINISHED_TICKET_STATUSES,
    OPEN_TICKET_STATUSES,
    PhotoStage,
    Ticket,
    TicketAction,
    TicketEvent,
    TicketKind,
    TicketPhoto,
    TicketStatus,
    TicketUrgency,
)
from app.security import ADMIN, MANAGER, REPAIRER, user_role_names
from app.services.exceptions import Conflict, DomainError, NotFound, ValidationFailed
from app.services.notifications import notify_ticket_event
from app.services.scope import visible_zone_ids
from app.utils.dates import now_utc, to_local

#: Time allowed to handle a ticket, by kind and urgency (suggestions: 7 days whatever the urgency).
DUE_DELTAS = {
    (TicketKind.repair, TicketUrgency.urgent): timedelta(hours=4),
    (TicketKind.repair, TicketUrgency.normal): timedelta(hours=48),
    (TicketKind.complaint, TicketUrgency.urgent): timedelta(hours=4),
    (TicketKind.complaint, TicketUrgency.normal): timedelta(hours=48),
    (TicketKind.suggestion, TicketUrgency.urgent): timedelta(days=7),
    (TicketKind.suggestion, TicketUrgency.normal): timedelta(days=7),
}
#: A resolved ticket the merchant neither confirms nor reopens closes after this long.
AUTO_CLOSE_AFTER = timedelta(days=7)
#: Photos per stage (report / progress / result) per ticket.
MAX_PHOTOS_PER_STAGE = 9
#: Largest photo, in bytes (TICKET_PHOTO_MAX_BYTES overrides).
MAX_PHOTO_BYTES = 5 * 1024 * 1024
#: Lifetime of a signed photo URL, in seconds (TICKET_PHOTO_URL_TTL_SECONDS overrides).
PHOTO_URL_TTL_SECONDS = 3600
TITLE_MAX, DESCRIPTION_MAX, NOTE_MAX, COMMENT_MAX = 60, 1000, 500, 300
#: Staff roles a ticket can be assigned to.
ASSIGNABLE_ROLES = {REPAIRER, MANAGER, ADMIN}
#: Leases whose units count as the merchant's own.
CURRENT_LEASE_STATUSES = (LeaseStatus.active, LeaseStatus.expiring)
#: Attempts at a fresh ticket number when a concurrent filing took the same one.
NUMBER_ATTEMPTS = 20
#: What the mini-program's timeline shows for the merchant's own steps.
MERCHANT_ACTOR_NAME = "商户"

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"))
_PHOTO_SALT = "ticket-photo"


class TicketStateError(Conflict):
    """The ticket's status does not allow the operation (409 ticket_state)."""

    code = "ticket_state"


class PhotoTooLarge(DomainError):
    code = "photo_too_large"
    http_status = 413


class PhotoTypeRefused(DomainError):
    code = "photo_type"
    http_status = 415


class TooManyPhotos(Conflict):
    code = "too_many_photos"


# -- rules and queries ------------------------------------------------------------------------------


def _enum(enum_cls, value, label):
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(value)
    except ValueError:
        raise ValidationFailed(f"{label}不正确：{value}", code="validation_failed") from None


def ticket_due_dt(kind, urgency, created_dt: datetime) -> datetime:
    """When a ticket falls due: +4 h urgent / +48 h normal (repairs, complaints), +7 days (suggestions)."""
    kind = _enum(TicketKind, kind, "工单类型")
    urgency = _enum(TicketUrgency, urgency, "紧急程度")
    return created_dt + DUE_DELTAS[(kind, urgency)]


def open_tickets_clause(now: datetime | None = None):
    """SQL condition: the ticket waits for staff (submitted or in progress)."""
    return Ticket.status.in_(OPEN_TICKET_STATUSES)


def overdue_clause(now: datetime):
    """SQL condition: open and past its due time at `now`."""
    return sa.and_(open_tickets_clause(now), Ticket.due_dt < now)


#: The merchant's list filters: open = submitted + in progress; closed = closed + cancelled.
MERCHANT_FILTERS = {
    "open": OPEN_TICKET_STATUSES,
    "resolved": (TicketStatus.resolved,),
    "closed": FINISHED_TICKET_STATUSES,
}


def visible_tickets_clause(user):
    """SQL condition on Ticket for the tickets a staff member may see: every zone's (Admin, Leader),
    their zones' (Manager), and the ones assigned to them (Repairer); None when unrestricted."""
    zone_ids = visible_zone_ids(user)
    if zone_ids is None:
        return None
    clauses = [Ticket.zone_clause(sorted(zone_ids))] if zone_ids else []
    if user_role_names(user) and getattr(user, "id", None) is not None:
        clauses.append(Ticket.assignee_id == user.id)
    return sa.or_(*clauses) if clauses else sa.false()


def merchant_tickets(merchant_id: int, status: str | None = None) -> sa.Select:
    """The merchant's tickets, newest first, optionally filtered by open / resolved / closed."""
    stmt = sa.select(Ticket).where(Ticket.merchant_id == merchant_id)
    if status:
        if status not in MERCHANT_FILTERS:
            raise ValidationFailed(f"状态筛选不正确：{status}")
        stmt = stmt.where(Ticket.status.in_(MERCHANT_FILTERS[status]))
    return stmt.order_by(Ticket.created_dt.desc(), Ticket.id.desc())


def get_ticket(ticket_id: int, for_update: bool = False) -> Ticket:
    """A ticket by id (404 ticket_not_found); for_update locks its row on PostgreSQL."""
    stmt = sa.select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update(of=Ticket).execution_options(populate_existing=True)
    ticket = db.session.execute(stmt).scalar_one_or_none()
    if ticket is None:
        raise NotFound("工单不存在", code="ticket_not_found")
    return ticket


def merchant_ticket(merchant_id: int, ticket_id: int, for_update: bool = False) -> Ticket:
    """One of the merchant's tickets (404 ticket_not_found for anyone else's)."""
    if not isinstance(ticket_id, int) or not 0 < ticket_id <= 2**31 - 1:
        raise NotFound("工单不存在", code="ticket_not_found")
    ticket = get_ticket(ticket_id, for_update=for_update)
    if ticket.merchant_id != merchant_id:
        raise NotFound("工单不存在", code="ticket_not_found")
    return ticket


def _ticket(ticket_or_id, for_update: bool = True) -> Ticket:
    ticket_id = ticket_or_id.id if isinstance(ticket_or_id, Ticket) else ticket_or_id
    return get_ticket(ticket_id, for_update=for_update)


def merchant_unit_ids(merchant: Merchant) -> set[int]:
    """Ids of the units on the merchant's current leases."""
    return set(db.session.execute(
        sa.select(lease_units.c.unit_id)
        .join(Lease, Lease.id == lease_units.c.lease_id)
        .where(Lease.merchant_id == merchant.id, Lease.status.in_(CURRENT_LEASE_STATUSES))
    ).scalars())


def can_cancel(ticket: Ticket) -> bool:
    """The merchant may still withdraw it (nobody has resolved it yet)."""
    return ticket.status in OPEN_TICKET_STATUSES


def can_rate(ticket: Ticket) -> bool:
    """The merchant may confirm the fix and rate it (which closes it)."""
    return ticket.status == TicketStatus.resolved


def can_reopen(ticket: Ticket) -> bool:
    """The merchant may say it is not fixed."""
    return ticket.status == TicketStatus.resolved


def staff_name(user) -> str:
    """How a staff member is named to merchants (last + first name, else the login)."""
    if user is None:
        return ""
    name = f"{user.last_name or ''}{user.first_name or ''}".strip()
    return name or user.username


def event_actor_name(event: TicketEvent) -> str:
    """Who did a step, as the merchant sees it: 商户, the staff member's name, or 系统 (the daily job)."""
    if event.actor_user is not None:
        return staff_name(event.actor_user)
    if event.actor_wechat_user_id is not None:
        return MERCHANT_ACTOR_NAME
    return "系统"


# -- numbering ------------------------------------------------------------------------------------


def ticket_number_prefix(market_code: str, created_dt: datetime) -> str:
    """'JJ-T261123-': the market code and the Shanghai day of filing."""
    return f"{market_code}-T{to_local(created_dt):%y%m%d}-"


def _next_ticket_number(market_id: int, prefix: str) -> str:
    last = db.session.scalar(
        sa.select(sa.func.max(Ticket.number))
        .where(Ticket.market_id == market_id, Ticket.number.startswith(prefix, autoescape=True))
    )
    seq = int(last[len(prefix):]) if last and last[len(prefix):].isdigit() else 0
    return f"{prefix}{seq + 1:04d}"


def _forget_audit_of(obj) -> None:
    """Drop a row that failed to insert from the audit hook's pending list (it is written on retry)."""
    pending = db.session.info.get("audit_new")
    if pending:
        db.session.info["audit_new"] = [o for o in pending if o is not obj]


def _insert_numbered(ticket: Ticket, market_code: str) -> None:
    """Give the ticket the next number of its market and day and insert it.

    Two filings at once may pick the same number: the unique (market_id, number) constraint refuses
    the second insert, whose savepoint is rolled back, and it tries the following number.
    """
    prefix = ticket_number_prefix(market_code, ticket.created_dt)
    for attempt in range(NUMBER_ATTEMPTS):
        ticket.number = _next_ticket_number(ticket.market_id, prefix)
        try:
            with db.session.begin_nested():
                db.session.add(ticket)
                db.session.flush()
            return
        except IntegrityError:
            _forget_audit_of(ticket)
            if attempt == NUMBER_ATTEMPTS - 1:
                raise
            if ticket in db.session:
                db.session.expunge(ticket)


# -- events ---------------------------------------------------------------------------------------


def _event(ticket: Ticket, action: TicketAction, note: str | None = None, user=None,
           wechat_user: WeChatUser | None = None, now: datetime | None = None) -> TicketEvent:
    event = TicketEvent(
        market_id=ticket.market_id,
        ticket=ticket,
        created_dt=now or now_utc(),
        actor_user_id=getattr(user, "id", user),
        actor_wechat_user_id=getattr(wechat_user, "id", wechat_user),
        action=action,
        note=note,
        status_after=ticket.status,
    )
    db.session.add(event)
    return event


def _text(value, limit: int, label: str, required: bool = False) -> str | None:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None:
        raise ValidationFailed(f"{label}格式不正确")
    if "\x00" in text:
        raise ValidationFailed(f"{label}不能包含控制字符")
    if required and not text:
        raise ValidationFailed(f"请填写{label}")
    if len(text) > limit:
        raise ValidationFailed(f"{label}不能超过 {limit} 个字")
    return text or None


def _require(ticket: Ticket, allowed, message: str) -> None:
    if ticket.status not in allowed:
        raise TicketStateError(message, status=ticket.status.value)


# -- merchant side --------------------------------------------------------------------------------


def create_ticket(merchant: Merchant, wechat_user: WeChatUser | None, kind, description: str,
                  title: str | None = None, unit_id: int | None = None, urgency="normal",
                  now: datetime | None = None) -> Ticket:
    """File a ticket for the merchant (status submitted, numbered, due per kind and urgency)."""
    kind = _enum(TicketKind, kind, "工单类型")
    urgency = _enum(TicketUrgency, urgency or TicketUrgency.normal, "紧急程度")
    description = _text(description, DESCRIPTION_MAX, "问题描述", required=True)
    title = _text(title, TITLE_MAX, "标题")
    if title is None:
        first_line = description.splitlines()[0].strip() if description.splitlines() else description
        title = first_line[:30] or str(kind.label)
    unit = None
    if unit_id is not None:
        if unit_id not in merchant_unit_ids(merchant):
            raise ValidationFailed("所选摊位不属于本商户", code="unit_not_own")
        unit = db.session.get(Unit, unit_id)
    now = now or now_utc()
    ticket = Ticket(
        market_id=merchant.market_id,
        zone_id=unit.zone_id if unit is not None else merchant.zone_id,
        merchant_id=merchant.id,
        unit_id=unit.id if unit is not None else None,
        created_by_wechat_user_id=getattr(wechat_user, "id", None),
        kind=kind,
        urgency=urgency,
        title=title,
        description=description,
        status=TicketStatus.submitted,
        due_dt=ticket_due_dt(kind, urgency, now),
        created_dt=now,
        updated_dt=now,
    )
    _insert_numbered(ticket, merchant.market.code)
    _event(ticket, TicketAction.submitted, None, wechat_user=wechat_user, now=now)
    db.session.flush()
    return ticket


def cancel_ticket(ticket_or_id, wechat_user: WeChatUser | None = None, note: str | None = None,
                  now: datetime | None = None) -> Ticket:
    """The merchant withdraws a ticket nobody has resolved yet (-> cancelled)."""
    ticket = _ticket(ticket_or_id)
    note = _text(note, NOTE_MAX, "备注")
    _require(ticket, OPEN_TICKET_STATUSES, f"工单{ticket.status.label}，不能撤销")
    now = now or now_utc()
    ticket.status = TicketStatus.cancelled
    ticket.closed_dt = now
    _event(ticket, TicketAction.cancelled, note, wechat_user=wechat_user, now=now)
    db.session.flush()
    return ticket


def reopen_ticket(ticket_or_id, wechat_user: WeChatUser | None, note: str, now: datetime | None = None) -> Ticket:
    """The merchant says a resolved ticket is not fixed (-> in progress again, with the reason)."""
    ticket = _ticket(ticket_or_id)
    note = _text(note, NOTE_MAX, "未解决的原因", required=True)
    _require(ticket, (TicketStatus.resolved,), f"工单{ticket.status.label}，只有已处理的工单可以要求重新处理")
    now = now or now_utc()
    ticket.status = TicketStatus.in_progress
    ticket.resolved_dt = None
    _event(ticket, TicketAction.reopened, note, wechat_user=wechat_user, now=now)
    db.session.flush()
    return ticket


def rate_ticket(ticket_or_id, wechat_user: WeChatUser | None, rating: int, comment: str | None = None,
                now: datetime | None = None) -> Ticket:
    """The merchant confirms a resolved ticket with 1-5 stars (-> closed)."""
    ticket = _ticket(ticket_or_id)
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValidationFailed("评分应为 1 到 5 星")
    comment = _text(comment, COMMENT_MAX, "评价")
    _require(ticket, (TicketStatus.resolved,), f"工单{ticket.status.label}，只有已处理的工单可以评价")
    now = now or now_utc()
    ticket.status = TicketStatus.closed
    ticket.closed_dt = now
    ticket.rating = rating
    ticket.rating_comment = comment
    _event(ticket, TicketAction.rated, comment, wechat_user=wechat_user, now=now)
    db.session.flush()
    return ticket


def add_report_photo(ticket_or_id, wechat_user: WeChatUser | None, data: bytes, filename: str | None = None,
                     content_type: str | None = None) -> TicketPhoto:
    """The merchant adds a photo to its report (only while the ticket is submitted or in progress)."""
    ticket = _ticket(ticket_or_id)
    _require(ticket, OPEN_TICKET_STATUSES, f"工单{ticket.status.label}，不能再添加照片")
    event = db.session.execute(
        sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                     TicketEvent.action == TicketAction.submitted).order_by(TicketEvent.id)
    ).scalars().first()
    return add_photo(ticket, PhotoStage.report, data, filename, content_type, event=event)


# -- staff side -----------------------------------------------------------------------------------


def _assignee(assignee_id) -> Any:
    from flask_appbuilder.security.sqla.models import User

    try:
        assignee_id = int(assignee_id)
    except (TypeError, ValueError):
        assignee_id = None
    user = db.session.get(User, assignee_id) if assignee_id is not None else None
    if user is None or not user.active:
        raise ValidationFailed("指派对象不存在或已停用", code="assignee_invalid")
    if not user_role_names_of(user) & ASSIGNABLE_ROLES:
        raise ValidationFailed("只能指派给维修人员或管理员", code="assignee_invalid")
    return user


def user_role_names_of(user) -> set[str]:
    """Role names of any user row (logged in or not)."""
    return {role.name for role in getattr(user, "roles", [])}


def assignable_users(zone_id: int | None = None) -> list:
    """Active staff a ticket can be given to: Repairers, Admins, and Managers (of the zone, when given)."""
    from flask_appbuilder.security.sqla.models import Role, User

    from app.models import Zone

    users = db.session.execute(
        sa.select(User).join(User.roles).where(User.active.is_(True), Role.name.in_(ASSIGNABLE_ROLES))
        .distinct().order_by(User.username)
    ).scalars().all()
    if zone_id is None:
        return list(users)
    zone = db.session.get(Zone, zone_id)
    managers = {u.id for u in zone.managers} if zone is not None else set()
    return [u for u in users if (user_role_names_of(u) & ASSIGNABLE_ROLES) - {MANAGER} or u.id in managers]


def accept_ticket(ticket_id, user, assignee_id: int | None = None, now: datetime | None = None) -> Ticket:
    """Staff take a submitted ticket on (-> in progress), for themselves or for the assignee given."""
    ticket = _ticket(ticket_id)
    _require(ticket, (TicketStatus.submitted,), f"工单{ticket.status.label}，不能受理")
    assignee = _assignee(assignee_id) if assignee_id is not None else None
    now = now or now_utc()
    ticket.status = TicketStatus.in_progress
    ticket.accepted_dt = now
    ticket.assignee_id = assignee.id if assignee is not None else getattr(user, "id", None)
    note = f"指派给 {staff_name(assignee)}" if assignee is not None and assignee.id != getattr(user, "id", None) else None
    event = _event(ticket, TicketAction.accepted, note, user=user, now=now)
    db.session.flush()
    notify_ticket_event(event)
    return ticket


def assign_ticket(ticket_id, user, assignee_id: int, now: datetime | None = None) -> Ticket:
    """Give an open ticket to a Repairer or Manager (a submitted one is accepted at the same time)."""
    ticket = _ticket(ticket_id)
    _require(ticket, OPEN_TICKET_STATUSES, f"工单{ticket.status.label}，不能指派")
    assignee = _assignee(assignee_id)
    now = now or now_utc()
    if ticket.status == TicketStatus.submitted:
        ticket.status = TicketStatus.in_progress
        ticket.accepted_dt = now
    ticket.assignee_id = assignee.id
    event = _event(ticket, TicketAction.assigned, f"指派给 {staff_name(assignee)}", user=user, now=now)
    db.session.flush()
    notify_ticket_event(event)
    return ticket


def add_progress(ticket_id, user, note: str, photos: Iterable = (), now: datetime | None = None) -> TicketEvent:
    """Staff record progress on a ticket in progress, with up to 9 progress photos.

    photos: werkzeug FileStorage objects or (data, filename, content_type) tuples."""
    ticket = _ticket(ticket_id)
    note = _text(note, NOTE_MAX, "进度说明", required=True)
    _require(ticket, (TicketStatus.in_progress,), f"工单{ticket.status.label}，请先受理再添加进度")
    parts = _uploads(photos)
    _check_room(ticket, PhotoStage.progress, len(parts))
    event = _event(ticket, TicketAction.progress, note, user=user, now=now)
    ticket.updated_dt = now or now_utc()
    db.session.flush()
    for part in parts:
        add_photo(ticket, PhotoStage.progress, *part, event=event)
    return event


def resolve_ticket(ticket_id, user, note: str, photos: Iterable = (), now: datetime | None = None) -> Ticket:
    """Staff mark a ticket in progress as resolved (with a note and result photos); the merchant confirms."""
    ticket = _ticket(ticket_id)
    note = _text(note, NOTE_MAX, "处理结果", required=True)
    _require(ticket, (TicketStatus.in_progress,), f"工单{ticket.status.label}，不能标记为已处理")
    parts = _uploads(photos)
    _check_room(ticket, PhotoStage.result, len(parts))
    now = now or now_utc()
    ticket.status = TicketStatus.resolved
    ticket.resolved_dt = now
    event = _event(ticket, TicketAction.resolved, note, user=user, now=now)
    db.session.flush()
    for part in parts:
        add_photo(ticket, PhotoStage.result, *part, event=event)
    notify_ticket_event(event)
    return ticket


def close_ticket(ticket_id, user, note: str, now: datetime | None = None) -> Ticket:
    """Staff close a suggestion with a reply (-> closed); repairs and complaints close through the merchant."""
    ticket = _ticket(ticket_id)
    note = _text(note, NOTE_MAX, "回复", required=True)
    if ticket.kind != TicketKind.suggestion:
        raise TicketStateError("只有建议类工单可以直接关闭；报修和投诉请标记为已处理，由商户确认",
                               status=ticket.status.value)
    _require(ticket, (*OPEN_TICKET_STATUSES, TicketStatus.resolved), f"工单{ticket.status.label}，不能关闭")
    now = now or now_utc()
    ticket.status = TicketStatus.closed
    ticket.closed_dt = now
    if ticket.accepted_dt is None:
        ticket.accepted_dt = now
    if ticket.resolved_dt is None:
        ticket.resolved_dt = now
    event = _event(ticket, TicketAction.closed, note, user=user, now=now)
    db.session.flush()
    notify_ticket_event(event)
    return ticket


def close_resolved_tickets(now: datetime | None = None) -> int:
    """Close tickets resolved more than 7 days ago that the merchant neither confirmed nor reopened."""
    now = now or now_utc()
    tickets = db.session.execute(
        sa.select(Ticket).where(Ticket.status == TicketStatus.resolved, Ticket.resolved_dt <= now - AUTO_CLOSE_AFTER)
        .order_by(Ticket.id).with_for_update(of=Ticket, skip_locked=True)
    ).scalars().all()
    events = []
    for ticket in tickets:
        ticket.status = TicketStatus.closed
        ticket.closed_dt = now
        events.append(_event(ticket, TicketAction.closed, "处理完成 7 天内商户未确认，系统自动关闭", now=now))
    db.session.flush()
    for event in events:
        notify_ticket_event(event)
    return len(tickets)


# -- photos ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoKind:
    content_type: str
    extension: str


def sniff_image(data: bytes) -> PhotoKind | None:
    """JPEG or PNG by the file's first bytes (the name and the declared type are not trusted)."""
    for magic, content_type, extension in _MAGIC:
        if data.startswith(magic):
            return PhotoKind(content_type, extension)
    return None


def _photo_parts(photo) -> tuple[bytes, str | None, str | None]:
    if isinstance(photo, (tuple, list)):
        data, filename, content_type = (list(photo) + [None, None])[:3]
        return data, filename, content_type
    limit = max_photo_bytes()
    data = photo.stream.read(limit + 1) if hasattr(photo, "stream") else photo.read(limit + 1)
    return data, getattr(photo, "filename", None), getattr(photo, "mimetype", None)


def _uploads(photos: Iterable) -> list[tuple[bytes, str | None, str | None]]:
    """The photos given to a staff step as (data, filename, content_type), empty file fields left out,
    every one checked before any is stored."""
    parts = [_photo_parts(photo) for photo in photos or ()]
    parts = [part for part in parts if part[0] or part[1]]
    for data, _filename, _content_type in parts:
        check_photo(data)
    return parts


def _photo_count(ticket: Ticket, stage: PhotoStage) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(TicketPhoto.id)).where(TicketPhoto.ticket_id == ticket.id, TicketPhoto.stage == stage)
    ) or 0


def _check_room(ticket: Ticket, stage: PhotoStage, adding: int) -> None:
    if adding and _photo_count(ticket, stage) + adding > MAX_PHOTOS_PER_STAGE:
        raise TooManyPhotos(f"每个工单每个环节最多 {MAX_PHOTOS_PER_STAGE} 张照片")


def max_photo_bytes() -> int:
    """The photo size limit in bytes."""
    return int(current_app.config.get("TICKET_PHOTO_MAX_BYTES") or MAX_PHOTO_BYTES)


def var_dir() -> Path:
    """MARKET_VAR_DIR (app config, else environment), else the project's var/ directory."""
    configured = current_app.config.get("MARKET_VAR_DIR") or os.environ.get("MARKET_VAR_DIR")
    if configured:
        return Path(configured)
    return Path(current_app.root_path).parent / "var"


def uploads_dir() -> Path:
    """Where uploaded files live: MARKET_VAR_DIR/uploads."""
    return var_dir() / "uploads"


def photo_path(photo: TicketPhoto) -> Path:
    """The stored file of a photo (refuses a path that would leave the uploads directory)."""
    root = uploads_dir().resolve()
    path = (root / photo.path).resolve()
    if root not in path.parents:
        raise NotFound("照片不存在", code="photo_not_found")
    return path


def read_photo(photo: TicketPhoto) -> bytes:
    """The bytes of a stored photo (404 photo_not_found when the file is gone)."""
    try:
        return photo_path(photo).read_bytes()
    except FileNotFoundError:
        raise NotFound("照片不存在", code="photo_not_found") from None


def check_photo(data: bytes) -> PhotoKind:
    """JPEG or PNG within the size limit, else PhotoTooLarge (413) / PhotoTypeRefused (415)."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValidationFailed("照片内容不正确")
    limit = max_photo_bytes()
    if len(data) > limit:
        raise PhotoTooLarge(f"照片不能超过 {limit // (1024 * 1024)} MB")
    kind = sniff_image(bytes(data[:16]))
    if kind is None:
        raise PhotoTypeRefused("只能上传 JPG 或 PNG 格式的照片")
    return kind


#: session.info key: photo files written in the current transaction.
_WRITTEN_FILES = "ticket_photo_files"


def _forget_written_files(session) -> None:
    session.info.pop(_WRITTEN_FILES, None)


def _remove_written_files(session, previous_transaction) -> None:
    """A rolled-back transaction leaves no photo files behind (savepoints keep theirs until the end)."""
    if previous_transaction.parent is not None:
        return
    for path in session.info.pop(_WRITTEN_FILES, []):
        try:
            path.unlink()
        except OSError:
            pass


_file_hooks_installed = False


def install_file_hooks() -> None:
    """Register, once per process, the session hooks that drop photo files of rolled-back transactions."""
    global _file_hooks_installed
    if _file_hooks_installed:
        return
    from flask_sqlalchemy.session import Session as FlaskSession

    sa.event.listen(FlaskSession, "after_commit", _forget_written_files)
    sa.event.listen(FlaskSession, "after_soft_rollback", _remove_written_files)
    _file_hooks_installed = True


def add_photo(ticket: Ticket, stage, data: bytes, filename: str | None = None, content_type: str | None = None,
              event: TicketEvent | None = None, now: datetime | None = None) -> TicketPhoto:
    """Store a JPEG/PNG photo of a ticket (≤ 5 MB, ≤ 9 per stage), typed by its bytes, with its SHA-256."""
    stage = _enum(PhotoStage, stage, "照片类别")
    if ticket.status in FINISHED_TICKET_STATUSES:
        raise TicketStateError(f"工单{ticket.status.label}，不能再添加照片", status=ticket.status.value)
    kind = check_photo(data)
    _check_room(ticket, stage, 1)
    now = now or now_utc()
    relative = f"tickets/{now:%Y}/{now:%m}/{ticket.id}/{secrets.token_hex(16)}.{kind.extension}"
    target = uploads_dir() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(bytes(data))
    os.replace(partial, target)
    db.session.info.setdefault(_WRITTEN_FILES, []).append(target)  # removed again if the transaction rolls back
    photo = TicketPhoto(
        market_id=ticket.market_id,
        ticket=ticket,
        event=event,
        stage=stage,
        path=relative,
        content_type=kind.content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_dt=now,
    )
    db.session.add(photo)
    db.session.flush()
    return photo


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_PHOTO_SALT)


def photo_token(photo: TicketPhoto) -> str:
    """A signed token naming the photo, for a URL an <image> can load without a bearer token."""
    return _serializer().dumps(photo.id)


def photo_from_token(token: str, max_age: int | None = None) -> TicketPhoto:
    """The photo a signed token names (404 photo_not_found when forged, expired or gone)."""
    max_age = max_age if max_age is not None else int(
        current_app.config.get("TICKET_PHOTO_URL_TTL_SECONDS") or PHOTO_URL_TTL_SECONDS)
    try:
        photo_id = _serializer().loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        raise NotFound("照片不存在或链接已过期", code="photo_not_found") from None
    photo = db.session.get(TicketPhoto, photo_id) if isinstance(photo_id, int) else None
    if photo is None:
        raise NotFound("照片不存在或链接已过期", code="photo_not_found")
    return photo


def photo_url(photo: TicketPhoto) -> str:
    """The signed mini-program URL of a photo: <PUBLIC_BASE_URL>/api/mp/v1/ticket-photos/<token>."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return f"{base}/api/mp/v1/ticket-photos/{photo_token(photo)}"


install_file_hooks()
