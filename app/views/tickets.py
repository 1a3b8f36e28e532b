"""Back office tickets (工单: 报修 / 投诉 / 建议): the list (overdue in red, zone scoped, a Repairer's own
tickets only), the ticket page with photos, the timeline and the actions the user's role allows.

Views are thin: every action parses its form, calls app.services.tickets and commits once."""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, request, send_file, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, TextAreaField, validators

from app.extensions import db
from app.models.tickets import Ticket, TicketEvent, TicketKind, TicketPhoto, TicketStatus
from app.security import ADMIN, MANAGER, REPAIRER
from app.services import tickets as ticket_service
from app.services.exceptions import DomainError, NotFound
from app.services.scope import ZoneScopeFilter
from app.services.tickets import visible_tickets_clause
from app.utils.dates import format_local, now_utc
from app.views.base import OverdueRowsMixin, ScopedModelView

#: Photos a staff member may attach to one progress note or resolution.
MAX_PHOTOS_PER_UPLOAD = 9
#: Roles shown beside the names offered as assignees.
ROLE_LABELS = {REPAIRER: _("Repairer"), MANAGER: _("Zone manager"), ADMIN: _("Administrator")}


class TicketScopeFilter(BaseFilter):
    """FAB base filter: the tickets the current user may see (their zones, or those assigned to them)."""

    name = "ticket scope"
    arg_name = "ticket_scope"

    def apply(self, query, value):
        condition = visible_tickets_clause(current_user)
        return query if condition is None else query.filter(condition)


class AssignForm(FlaskForm):
    assignee_id = SelectField(_("Assign to"), coerce=int,
                              validators=[validators.InputRequired(message=_("Choose who handles it."))])


class NoteForm(FlaskForm):
    note = TextAreaField(_("Note"), [
        validators.InputRequired(message=_("Please write a note.")),
        validators.Length(max=500, message=_("At most %(max)d characters.")),
    ])




LABELS = {
    "number": _("Ticket number"),
    "kind": _("Ticket kind"),
    "urgency": _("Urgency"),
    "status": _("Status"),
    "title": _("Title"),
    "description": _("Description"),
    "merchant": _("Merchant"),
    "unit": _("Unit"),
    "zone": _("Zone"),
    "assignee": _("Assignee"),
    "created_dt": _("Created"),
    "due_dt": _("Due"),
    "accepted_dt": _("Accepted at"),
    "resolved_dt": _("Resolved at"),
    "closed_dt": _("Closed at"),
    "rating": _("Rating"),
    "rating_comment": _("Rating comment"),
}


class TicketView(OverdueRowsMixin, ScopedModelView):
    """Tickets (工单): list with filters and export; the ticket page with photos, timeline and actions."""

    datamodel = SQLAInterface(Ticket)
    list_title = _("Tickets")
    show_title = _("Ticket")
    label_columns = LABELS
    list_columns = ["number", "kind", "urgency", "status", "merchant", "unit", "zone", "assignee", "created_dt",
                    "due_dt"]
    export_columns = ["number", "kind", "urgency", "status", "title", "description", "merchant", "unit", "zone",
                      "assignee", "created_dt", "due_dt", "accepted_dt", "resolved_dt", "closed_dt", "rating",
                      "rating_comment"]
    search_columns = ["status", "kind", "urgency", "zone", "assignee", "merchant", "number", "created_dt", "due_dt"]
    order_columns = ["number", "created_dt", "due_dt", "status", "urgency"]
    base_order = ("id", "desc")
    base_permissions = ["can_list", "can_show", "can_export", "can_photo", "can_assign", "can_progress",
                        "can_resolve", "can_close"]
    row_kind = "ticket"
    overdue_legend = _("Red: overdue (still open after the due time)")
    search_form_query_rel_fields = {
        "zone": [["id", ZoneScopeFilter, lambda: None]],
        "merchant": [["id", ZoneScopeFilter, lambda: None]],
        "unit": [["id", ZoneScopeFilter, lambda: None]],
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Tickets have their own scope: a Repairer sees the tickets assigned to them, not a zone.
        self.base_filters = [["id", TicketScopeFilter, lambda: None]]
        self._base_filters = self.datamodel.get_filters().add_filter_list(self.base_filters)

    def overdue_condition(self):
        return ticket_service.overdue_clause(now_utc())

    def _ticket_or_404(self, pk) -> Ticket:
        ticket = self.datamodel.get(pk, self._base_filters)
        if ticket is None:
            abort(404)
        return ticket

    def _can(self, permission):
        return self.appbuilder.sm.has_access(permission, self.class_permission_name)

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """A ticket: description, merchant contact, photos, the timeline and the actions of the user's role."""
        ticket = self._ticket_or_404(pk)
        events = db.session.scalars(
            sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
            .order_by(TicketEvent.created_dt, TicketEvent.id)
        ).all()
        photos = db.session.scalars(
            sa.select(TicketPhoto).where(TicketPhoto.ticket_id == ticket.id).order_by(TicketPhoto.id)
        ).all()
        by_event = {}
        for photo in photos:
            by_event.setdefault(photo.event_id, []).append(photo)
        report_photos = [p for p in photos if p.stage.value == "report"]
        is_open = ticket.status in (TicketStatus.submitted, TicketStatus.in_progress)
        can_assign = self._can("can_assign") and is_open
        assign_form = AssignForm()
        if can_assign:
            assign_form.assignee_id.choices = self._assignee_choices(ticket)
            assign_form.assignee_id.data = ticket.assignee_id or current_user.id
        is_overdue = bool(db.session.scalar(
            sa.select(Ticket.id).where(Ticket.id == ticket.id, ticket_service.overdue_clause(now_utc()))
        ))
        return self.render_template(
            "tickets/show.html",
            title=ticket.number,
            ticket=ticket,
            events=events,
            report_photos=report_photos,
            photos_by_event=by_event,
            is_overdue=is_overdue,
            can_assign=can_assign,
            can_progress=self._can("can_progress") and ticket.status == TicketStatus.in_progress,
            can_resolve=self._can("can_resolve") and ticket.status == TicketStatus.in_progress,
            can_close=(self._can("can_close") and ticket.kind == TicketKind.suggestion
                       and ticket.status in (TicketStatus.submitted, TicketStatus.in_progress, TicketStatus.resolved)),
            assign_form=assign_form,
            note_form=NoteForm(),
            max_photos=MAX_PHOTOS_PER_UPLOAD,
            format_local=format_local,
            staff_name=ticket_service.staff_name,
        )

    def _assignee_choices(self, ticket):
        """Active Repairer and Manager accounts, as (id, name) choices."""
        return [(user.id, _user_label(user)) for user in ticket_service.assignable_users(ticket.zone_id)]

    @expose("/photo/<int:photo_id>", methods=["GET"])
    @has_access
    def photo(self, photo_id):
        """The bytes of a ticket photo, for users who may see its ticket (404 otherwise)."""
        photo = db.session.get(TicketPhoto, photo_id)
        if photo is None:
            abort(404)
        self._ticket_or_404(photo.ticket_id)
        try:
            path = ticket_service.photo_path(photo)
        except NotFound:
            abort(404)
        if not path.is_file():
            abort(404)
        response = send_file(path, mimetype=photo.content_type, conditional=True, max_age=3600)
        response.headers["Cache-Control"] = "private, max-age=3600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _files(self):
        """The photos uploaded with a progress or resolve form; None (flashed) when there are too many."""
        files = [f for f in request.files.getlist("photos") if f and f.filename]
        if len(files) > MAX_PHOTOS_PER_UPLOAD:
            flash(_("At most %(count)s photos at a time.", count=MAX_PHOTOS_PER_UPLOAD), "danger")
            return None
        return files

    def _done(self, ticket, message):
        db.session.commit()
        flash(message, "success")
        return redirect(url_for(".show", pk=ticket.id))

    def _failed(self, ticket, exc):
        db.session.rollback()
        flash(exc.message, "danger")
        return redirect(url_for(".show", pk=ticket.id))

    def _form_errors(self, ticket, form):
        for field, errors in form.errors.items():
            label = getattr(form, field).label.text if hasattr(form, field) else ""
            for error in errors:
                flash(f"{label}：{error}" if label else str(error), "danger")
        return redirect(url_for(".show", pk=ticket.id))

    @expose("/assign/<pk>", methods=["POST"])
    @has_access
    def assign(self, pk):
        """Accept the ticket (if it is new) and assign it to a Repairer or Manager."""
        ticket = self._ticket_or_404(pk)
        form = AssignForm()
        form.assignee_id.choices = self._assignee_choices(ticket)
        if not form.validate():
            return self._form_errors(ticket, form)
        try:
            ticket_service.assign_ticket(ticket.id, current_user, form.assignee_id.data)
        except DomainError as exc:
            return self._failed(ticket, exc)
        return self._done(ticket, _("Ticket %(number)s assigned.", number=ticket.number))

    @expose("/progress/<pk>", methods=["POST"])
    @has_access
    def progress(self, pk):
        """Add a progress note with up to nine photos."""
        return self._note_with_photos(pk, ticket_service.add_progress, lambda ticket: _("Progress added."))

    @expose("/resolve/<pk>", methods=["POST"])
    @has_access
    def resolve(self, pk):
        """Mark the ticket resolved, with a note and result photos; the merchant then confirms."""
        return self._note_with_photos(pk, ticket_service.resolve_ticket,
                                      lambda ticket: _("Ticket %(number)s marked resolved.", number=ticket.number))

    def _note_with_photos(self, pk, action, done_message):
        """Run a staff action that takes a note and uploaded photos, then back to the ticket page."""
        ticket = self._ticket_or_404(pk)
        form = NoteForm()
        if not form.validate():
            return self._form_errors(ticket, form)
        files = self._files()
        if files is None:
            return redirect(url_for(".show", pk=ticket.id))
        try:
            action(ticket.id, current_user, form.note.data, photos=files)
        except DomainError as exc:
            return self._failed(ticket, exc)
        return self._done(ticket, done_message(ticket))

    @expose("/close/<pk>", methods=["POST"])
    @has_access
    def close(self, pk):
        """Close a suggestion with a reply to the merchant."""
        ticket = self._ticket_or_404(pk)
        form = NoteForm()
        if not form.validate():
            return self._form_errors(ticket, form)
        try:
            ticket_service.close_ticket(ticket.id, current_user, form.note.data)
        except DomainError as exc:
            return self._failed(ticket, exc)
        return self._done(ticket, _("Ticket %(number)s closed.", number=ticket.number))


def _user_label(user) -> str:
    """An assignee choice: the staff member's name and role(s), e.g. "王师傅（维修工）"."""
    roles = "、".join(str(ROLE_LABELS.get(role.name, role.name)) for role in user.roles)
    return f"{ticket_service.staff_name(user)}（{roles}）" if roles else ticket_service.staff_name(user)


__all__ = ["TicketView"]
