"""Tickets (工单): the current merchant files repairs, complaints and suggestions, adds photos,
follows them, and cancels, reopens or rates them. Photos are read through signed URLs
(GET /ticket-photos/<token>), which an <image src> can load without the bearer token."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Response, current_app, g, request
from sqlalchemy.orm import selectinload

from app.api.mp import (
    ApiError,
    api_doc,
    json_body,
    max_body,
    merchant_required,
    mp_api,
    paginate,
    query_args,
    rate_limit,
)
from app.api.schemas.tickets import (
    TicketCancelSchema,
    TicketCreateSchema,
    TicketDetailSchema,
    TicketItemSchema,
    TicketListQuerySchema,
    TicketPageSchema,
    TicketPhotoSchema,
    TicketPhotoUploadSchema,
    TicketRatingSchema,
    TicketReopenSchema,
)
from app.extensions import db
from app.models.tickets import Ticket, TicketEvent, TicketPhoto
from app.services import tickets as service

STATE_NOTE = "409 ticket_state (with a Chinese message) when the ticket's status does not allow it; " \
             "404 ticket_not_found for another merchant's ticket."


def _create_limit() -> str:
    return current_app.config.get("TICKET_CREATE_RATE_LIMIT") or "20/hour"


def _create_limit_key() -> str:
    user = getattr(g, "mp_user", None)
    return f"mp-tickets:{user.id}" if user is not None else f"mp-tickets-ip:{request.remote_addr}"


def _upload_limit() -> int:
    """The largest upload body: the photo limit plus room for the multipart envelope."""
    return service.max_photo_bytes() + 64 * 1024


def _own(ticket_id: int, for_update: bool = False) -> Ticket:
    return service.merchant_ticket(g.merchant.id, ticket_id, for_update=for_update)


def _detail(ticket: Ticket) -> dict:
    """The ticket as GET /tickets/{id} answers it, photos with fresh signed URLs."""
    db.session.refresh(ticket)
    events = db.session.execute(
        sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        .options(selectinload(TicketEvent.actor_user), selectinload(TicketEvent.photos))
        .order_by(TicketEvent.created_dt, TicketEvent.id)
    ).scalars().all()
    photos = ticket.photos
    ticket.photo_items = [{"id": p.id, "stage": p.stage.value, "url": service.photo_url(p)} for p in photos]
    urls = {item["id"]: item["url"] for item in ticket.photo_items}
    ticket.event_items = [
        {"at": e.created_dt, "action": e.action.value, "note": e.note, "status_after": e.status_after.value,
         "by": service.event_actor_name(e), "photos": [{"id": p.id, "url": urls[p.id]} for p in e.photos]}
        for e in events
    ]
    ticket.assignee_name = service.staff_name(ticket.assignee) or None
    ticket.photo_count = len(photos)
    ticket.can_cancel = service.can_cancel(ticket)
    ticket.can_rate = service.can_rate(ticket)
    ticket.can_reopen = service.can_reopen(ticket)
    return TicketDetailSchema().dump(ticket)


def _attach_photo_counts(tickets: list[Ticket]) -> None:
    """Give a page of tickets their photo counts in one query."""
    counts = dict(db.session.execute(
        sa.select(TicketPhoto.ticket_id, sa.func.count(TicketPhoto.id))
        .where(TicketPhoto.ticket_id.in_([t.id for t in tickets])).group_by(TicketPhoto.ticket_id)
    ).all())
    for ticket in tickets:
        ticket.photo_count = counts.get(ticket.id, 0)


@mp_api.post("/tickets")
@api_doc("File a repair request, complaint or suggestion", tags=["tickets"], body=TicketCreateSchema,
         response=TicketDetailSchema, status=201, errors=(429,),
         description="Then add photos with POST /tickets/{id}/photos. 422 unit_not_own when unit_id is not one "
                     "of the merchant's units. Due in 4 h (urgent) / 48 h (normal) for repairs and complaints, "
                     "7 days for suggestions. At most 20 per hour per user (429).")
@merchant_required
@rate_limit(_create_limit, key_func=_create_limit_key)
def create_ticket():
    data = json_body(TicketCreateSchema())
    ticket = service.create_ticket(g.merchant, g.mp_user, data["kind"], data["description"],
                                   title=data.get("title"), unit_id=data.get("unit_id"),
                                   urgency=data.get("urgency") or "normal")
    db.session.commit()
    return _detail(ticket), 201


@mp_api.get("/tickets")
@api_doc("The merchant's tickets, newest first", tags=["tickets"], query=TicketListQuerySchema,
         response=TicketPageSchema)
@merchant_required
def list_tickets():
    args = query_args(TicketListQuerySchema())
    stmt = service.merchant_tickets(g.merchant.id, args.get("status")).options(selectinload(Ticket.unit))
    return paginate(stmt, TicketItemSchema(), args["page"], args["page_size"], prepare=_attach_photo_counts)


@mp_api.get("/tickets/<int(signed=True):ticket_id>")
@api_doc("One ticket with its photos and timeline", tags=["tickets"], response=TicketDetailSchema, errors=(404,),
         description="404 ticket_not_found for another merchant's ticket. Photo URLs are valid for 1 hour: "
                     "fetch the ticket again for fresh ones.")
@merchant_required
def get_ticket(ticket_id: int):
    return _detail(_own(ticket_id))


@mp_api.post("/tickets/<int(signed=True):ticket_id>/photos")
@api_doc("Add a photo to the ticket's report (wx.uploadFile, field name file)", tags=["tickets"],
         body=TicketPhotoUploadSchema, body_content_type="multipart/form-data", response=TicketPhotoSchema,
         status=201, errors=(404, 409),
         description="multipart/form-data with the photo in the field `file` (a `stage` field is ignored). "
                     "JPEG or PNG by content (415 photo_type otherwise), at most 5 MB (413 photo_too_large), "
                     "at most 9 per ticket (409 too_many_photos), only while the ticket is submitted or in "
                     "progress (409 ticket_state). 404 ticket_not_found for another merchant's ticket.")
@max_body(_upload_limit)
@merchant_required
def upload_ticket_photo(ticket_id: int):
    ticket = _own(ticket_id, for_update=True)
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "请以 multipart/form-data 上传照片（字段名 file）")
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(422, "validation_failed", "请选择要上传的照片", fields={"file": ["缺少照片"]})
    data = upload.stream.read(service.max_photo_bytes() + 1)
    photo = service.add_report_photo(ticket, g.mp_user, data, upload.filename, upload.mimetype)
    db.session.commit()
    return TicketPhotoSchema().dump({"id": photo.id, "url": service.photo_url(photo)}), 201


@mp_api.post("/tickets/<int(signed=True):ticket_id>/cancel")
@api_doc("Withdraw a ticket that is not resolved yet", tags=["tickets"], body=TicketCancelSchema,
         response=TicketDetailSchema, errors=(404, 409),
         description="Body {} or {\"note\": \"...\"}. Allowed while submitted or in progress. " + STATE_NOTE)
@merchant_required
def cancel_ticket(ticket_id: int):
    data = json_body(TicketCancelSchema())
    ticket = service.cancel_ticket(_own(ticket_id, for_update=True), g.mp_user, data.get("note"))
    db.session.commit()
    return _detail(ticket)


@mp_api.post("/tickets/<int(signed=True):ticket_id>/reopen")
@api_doc("Say a resolved ticket is not fixed (back to in progress)", tags=["tickets"], body=TicketReopenSchema,
         response=TicketDetailSchema, errors=(404, 409),
         description="The note (what is still wrong) is required. Allowed only when resolved. " + STATE_NOTE)
@merchant_required
def reopen_ticket(ticket_id: int):
    data = json_body(TicketReopenSchema())
    ticket = service.reopen_ticket(_own(ticket_id, for_update=True), g.mp_user, data["note"])
    db.session.commit()
    return _detail(ticket)


@mp_api.post("/tickets/<int(signed=True):ticket_id>/rating")
@api_doc("Confirm a resolved ticket with 1-5 stars (closes it)", tags=["tickets"], body=TicketRatingSchema,
         response=TicketDetailSchema, errors=(404, 409),
         description="Allowed only when resolved. " + STATE_NOTE)
@merchant_required
def rate_ticket(ticket_id: int):
    data = json_body(TicketRatingSchema())
    ticket = service.rate_ticket(_own(ticket_id, for_update=True), g.mp_user, data["rating"], data.get("comment"))
    db.session.commit()
    return _detail(ticket)


@mp_api.get("/ticket-photos/<token>")
@api_doc("A ticket photo by its signed URL (no bearer token)", tags=["tickets"],
         content_type=("image/jpeg", "image/png"), errors=(404,),
         description="The URLs in ticket answers point here; they are valid for 1 hour. 404 photo_not_found "
                     "for a forged, altered or expired token.")
def get_ticket_photo(token: str):
    photo = service.photo_from_token(token)
    data = service.read_photo(photo)
    return Response(data, mimetype=photo.content_type, headers={
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{photo.sha256}"',
    })
