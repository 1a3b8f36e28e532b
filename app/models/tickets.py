"""Tickets (工单: 报修 / 投诉 / 建议), their progress timeline and their photos."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_appbuilder import Model
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import relationship

from app.models.base import Audited, MarketScoped, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import LabeledEnum
from app.utils.dates import now_utc


class TicketKind(LabeledEnum):
    repair = "repair"
    complaint = "complaint"
    suggestion = "suggestion"

    @classmethod
    def _labels(cls):
        return {"repair": _("Repair"), "complaint": _("Complaint"), "suggestion": _("Suggestion")}


class TicketUrgency(LabeledEnum):
    normal = "normal"
    urgent = "urgent"

    @classmethod
    def _labels(cls):
        return {"normal": _("Normal"), "urgent": _("Urgent")}


class TicketStatus(LabeledEnum):
    submitted = "submitted"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"
    cancelled = "cancelled"

    @classmethod
    def _labels(cls):
        return {
            "submitted": _("Submitted"),
            "in_progress": _("In progress"),
            "resolved": _("Resolved"),
            "closed": _("Closed"),
            "cancelled": _("Cancelled"),
        }


#: Tickets still waiting for staff (overdue when now > due_dt).
OPEN_TICKET_STATUSES = (TicketStatus.submitted, TicketStatus.in_progress)
#: Tickets that are over (the merchant's "closed" filter).
FINISHED_TICKET_STATUSES = (TicketStatus.closed, TicketStatus.cancelled)


class TicketAction(LabeledEnum):
    submitted = "submitted"
    accepted = "accepted"
    assigned = "assigned"
    progress = "progress"
    resolved = "resolved"
    reopened = "reopened"
    closed = "closed"
    cancelled = "cancelled"
    rated = "rated"

    @classmethod
    def _labels(cls):
        return {
            "submitted": _("Submitted"),
            "accepted": _("Accepted"),
            "assigned": _("Assigned"),
            "progress": _("Progress update"),
            "resolved": _("Resolved"),
            "reopened": _("Reopened"),
            "closed": _("Closed"),
            "cancelled": _("Cancelled"),
            "rated": _("Rated"),
        }


class PhotoStage(LabeledEnum):
    report = "report"
    progress = "progress"
    result = "result"

    @classmethod
    def _labels(cls):
        return {"report": _("Report photos"), "progress": _("Progress photos"), "result": _("Result photos")}


class Ticket(Audited, MarketScoped, TimestampMixin, Model):
    """A merchant's repair request, complaint or suggestion, handled by staff of its zone."""

    __tablename__ = "tickets"
    __table_args__ = (
        #: Numbers are allocated per market and Shanghai day; the constraint settles concurrent filings.
        sa.UniqueConstraint("market_id", "number"),
        sa.Index("ix_tickets_status_due_dt", "status", "due_dt"),
        sa.Index("ix_tickets_merchant_status", "merchant_id", "status"),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    #: <market code>-T<yymmdd>-<4 digits>, the day in Asia/Shanghai.
    number = sa.Column(sa.String(40), nullable=False)
    #: The unit's zone, else the merchant's; scopes managers.
    zone_id = sa.Column(sa.ForeignKey("zones.id"), index=True)
    merchant_id = sa.Column(sa.ForeignKey("merchants.id"), nullable=False, index=True)
    unit_id = sa.Column(sa.ForeignKey("units.id"))
    created_by_wechat_user_id = sa.Column(sa.ForeignKey("wechat_users.id"))
    kind = enum_column(TicketKind)
    urgency = enum_column(TicketUrgency, default=TicketUrgency.normal)
    title = sa.Column(sa.String(60), nullable=False)
    description = sa.Column(sa.String(1000), nullable=False)
    status = enum_column(TicketStatus, default=TicketStatus.submitted)
    assignee_id = sa.Column(sa.ForeignKey("ab_user.id"), index=True)
    #: UTC: created + 4 h (urgent) / 48 h (normal) for repairs and complaints, + 7 days for suggestions.
    due_dt = sa.Column(UTCDateTime, nullable=False)
    accepted_dt = sa.Column(UTCDateTime)
    resolved_dt = sa.Column(UTCDateTime)
    closed_dt = sa.Column(UTCDateTime)
    #: 1-5 stars given by the merchant when confirming.
    rating = sa.Column(sa.SmallInteger)
    rating_comment = sa.Column(sa.String(300))

    zone = relationship("Zone")
    merchant = relationship("Merchant")
    unit = relationship("Unit")
    created_by_wechat_user = relationship("WeChatUser")
    assignee = relationship("User", foreign_keys=[assignee_id])
    events = relationship("TicketEvent", back_populates="ticket", order_by="TicketEvent.id",
                          cascade="all, delete-orphan")
    photos = relationship("TicketPhoto", back_populates="ticket", order_by="TicketPhoto.id",
                          cascade="all, delete-orphan")

    def __repr__(self):
        return self.number or f"ticket {self.id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TICKET_STATUSES

    def is_overdue_at(self, now: datetime | None = None) -> bool:
        """Open and past its due time (cf. app.services.tickets.overdue_clause)."""
        return self.is_open and (now or now_utc()) > self.due_dt

    @property
    def is_overdue(self) -> bool:
        return self.is_overdue_at()

    @property
    def is_on_time(self) -> bool | None:
        """Resolved within the due time (None while unresolved); for staff timeliness."""
        if self.resolved_dt is None:
            return None
        return self.resolved_dt <= self.due_dt

    def writable_by(self, user) -> bool:
        """Whether the user is the ticket's assignee (as stored before this change): a Repairer updates
        the tickets assigned to them whatever their zone (for the flush-time zone guard)."""
        user_id = getattr(user, "id", None)
        if user_id is None:
            return False
        history = sa.inspect(self).attrs.assignee_id.history
        before = history.deleted or history.unchanged
        return bool(before) and before[0] == user_id

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


class TicketEvent(Audited, MarketScoped, Model):
    """One step of a ticket's timeline: who did what, with a note and the status after it."""

    __tablename__ = "ticket_events"
    __table_args__ = (sa.Index("ix_ticket_events_ticket_id", "ticket_id"),)

    id = sa.Column(sa.Integer, primary_key=True)
    ticket_id = sa.Column(sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    created_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc)
    #: Staff member (back office); None for the merchant's own actions and jobs.
    actor_user_id = sa.Column(sa.ForeignKey("ab_user.id"))
    #: The merchant's WeChat user (mini-program).
    actor_wechat_user_id = sa.Column(sa.ForeignKey("wechat_users.id"))
    action = enum_column(TicketAction)
    note = sa.Column(sa.String(500))
    status_after = enum_column(TicketStatus)

    ticket = relationship("Ticket", back_populates="events")
    actor_user = relationship("User", foreign_keys=[actor_user_id])
    actor_wechat_user = relationship("WeChatUser")
    photos = relationship("TicketPhoto", back_populates="event", order_by="TicketPhoto.id")

    def __repr__(self):
        return f"{self.ticket} {self.action.value if self.action else ''}"

    @property
    def scope_parent(self):
        return self.ticket

    def writable_by(self, user) -> bool:
        return self.ticket is not None and self.ticket.writable_by(user)

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.ticket_id.in_(sa.select(Ticket.id).where(Ticket.zone_id.in_(zone_ids)))


class TicketPhoto(Audited, MarketScoped, Model):
    """A JPEG or PNG photo of a ticket, stored under MARKET_VAR_DIR/uploads."""

    __tablename__ = "ticket_photos"
    __table_args__ = (sa.Index("ix_ticket_photos_ticket_stage", "ticket_id", "stage"),)

    id = sa.Column(sa.Integer, primary_key=True)
    ticket_id = sa.Column(sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    #: The timeline step it illustrates (the merchant's report photos hang on the "submitted" event).
    event_id = sa.Column(sa.ForeignKey("ticket_events.id", ondelete="SET NULL"), index=True)
    stage = enum_column(PhotoStage)
    #: Relative to MARKET_VAR_DIR/uploads, e.g. tickets/2026/11/<ticket id>/<hex>.jpg.
    path = sa.Column(sa.String(255), nullable=False)
    #: image/jpeg or image/png, from the bytes (not the file name).
    content_type = sa.Column(sa.String(32), nullable=False)
    size_bytes = sa.Column(sa.Integer, nullable=False)
    #: Hex SHA-256 of the stored bytes.
    sha256 = sa.Column(sa.String(64), nullable=False)
    created_dt = sa.Column(UTCDateTime, nullable=False, default=now_utc)

    ticket = relationship("Ticket", back_populates="photos")
    event = relationship("TicketEvent", back_populates="photos")

    def __repr__(self):
        return f"{self.ticket} photo {self.id}"

    @property
    def scope_parent(self):
        return self.ticket

    def writable_by(self, user) -> bool:
        return self.ticket is not None and self.ticket.writable_by(user)

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.ticket_id.in_(sa.select(Ticket.id).where(Ticket.zone_id.in_(zone_ids)))
