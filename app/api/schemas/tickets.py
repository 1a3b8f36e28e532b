"""Tickets (工单) as the merchant files and follows them. Dates are UTC ISO 8601."""
from marshmallow import Schema, fields, validate

from app.api.schemas.common import MAX_ID, NO_CONTROL_CHARS_PATTERN, PageQuerySchema, no_control_chars, page_schema
from app.utils.dates import now_utc

KINDS = ["repair", "complaint", "suggestion"]
URGENCIES = ["normal", "urgent"]
STATUS_DESCRIPTION = "submitted | in_progress | resolved | closed | cancelled"
ACTION_DESCRIPTION = "submitted | accepted | assigned | progress | resolved | reopened | closed | cancelled | rated"


def _text(max_length: int, min_length: int = 0, **kwargs) -> fields.String:
    return fields.String(validate=[validate.Length(min=min_length, max=max_length), no_control_chars],
                         metadata={"pattern": NO_CONTROL_CHARS_PATTERN, **kwargs.pop("metadata", {})}, **kwargs)


class TicketCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS),
                         metadata={"description": "repair (报修) | complaint (投诉) | suggestion (建议)"})
    description = _text(1000, 1, required=True, metadata={"description": "What is wrong, at most 1000 characters"})
    title = _text(60, allow_none=True,
                  metadata={"description": "At most 60 characters; omitted: the start of the description"})
    unit_id = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=MAX_ID),
                             metadata={"description": "One of the merchant's units (GET /me units); "
                                                      "422 unit_not_own otherwise"})
    urgency = fields.String(load_default="normal", validate=validate.OneOf(URGENCIES),
                            metadata={"description": "normal (due in 48 h) | urgent (due in 4 h); "
                                                     "suggestions are due in 7 days"})


class TicketListQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(["open", "resolved", "closed"]),
                           metadata={"description": "open = submitted + in_progress; resolved; "
                                                    "closed = closed + cancelled. Omitted: every ticket."})


class TicketCancelSchema(Schema):
    note = _text(500, allow_none=True, metadata={"description": "Why the merchant withdraws it (optional)"})


class TicketReopenSchema(Schema):
    note = _text(500, 1, required=True, metadata={"description": "What is still wrong (required)"})


class TicketRatingSchema(Schema):
    rating = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=5),
                            metadata={"description": "1-5 stars"})
    comment = _text(300, allow_none=True)


class TicketPhotoUploadSchema(Schema):
    """The multipart/form-data fields wx.uploadFile sends (name: "file")."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "A JPEG or PNG photo, at most 5 MB"})
    stage = fields.String(metadata={"description": "Ignored: merchants add report photos only"})


class TicketPhotoSchema(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True, metadata={"description": "Signed URL valid for 1 hour; no token needed"})


class TicketStagePhotoSchema(TicketPhotoSchema):
    stage = fields.String(required=True, metadata={"description": "report | progress | result"})


class TicketEventSchema(Schema):
    at = fields.DateTime(required=True, metadata={"description": "UTC"})
    action = fields.String(required=True, metadata={"description": ACTION_DESCRIPTION})
    note = fields.String(allow_none=True)
    status_after = fields.String(required=True, metadata={"description": STATUS_DESCRIPTION})
    by = fields.String(required=True, metadata={"description": "商户 (the merchant), the staff member's name, "
                                                               "or 系统 (closed automatically)"})
    photos = fields.List(fields.Nested(TicketPhotoSchema), required=True)


class TicketItemSchema(Schema):
    id = fields.Integer(required=True)
    number = fields.String(required=True, metadata={"description": "<market code>-T<yymmdd>-<4 digits>"})
    kind = fields.Function(lambda t: t.kind.value, required=True,
                           metadata={"type": "string", "description": "repair | complaint | suggestion"})
    urgency = fields.Function(lambda t: t.urgency.value, required=True,
                              metadata={"type": "string", "description": "normal | urgent"})
    title = fields.String(required=True)
    status = fields.Function(lambda t: t.status.value, required=True,
                             metadata={"type": "string", "description": STATUS_DESCRIPTION})
    unit_code = fields.Function(lambda t: t.unit.code if t.unit is not None else None, allow_none=True,
                                metadata={"type": "string", "description": "The stall (A-001), if one was chosen"})
    created_at = fields.DateTime(required=True, attribute="created_dt", metadata={"description": "UTC"})
    due_at = fields.DateTime(required=True, attribute="due_dt", metadata={"description": "UTC; handle by then"})
    is_overdue = fields.Function(lambda t: t.is_overdue_at(now_utc()), required=True,
                                 metadata={"type": "boolean", "description": "Still open and past due_at"})
    photo_count = fields.Function(lambda t: t.__dict__["photo_count"] if "photo_count" in t.__dict__
                                  else len(t.photos), required=True,
                                  metadata={"type": "integer", "description": "Photos of every stage"})


TicketPageSchema = page_schema(TicketItemSchema, "TicketPage")


class TicketDetailSchema(TicketItemSchema):
    description = fields.String(required=True)
    assignee_name = fields.Function(lambda t: t.__dict__.get("assignee_name"), allow_none=True,
                                    metadata={"type": "string", "description": "Who handles it"})
    accepted_at = fields.DateTime(allow_none=True, attribute="accepted_dt")
    resolved_at = fields.DateTime(allow_none=True, attribute="resolved_dt")
    closed_at = fields.DateTime(allow_none=True, attribute="closed_dt",
                                metadata={"description": "Closed or cancelled at (UTC)"})
    rating = fields.Integer(allow_none=True, metadata={"description": "1-5 once the merchant confirmed"})
    rating_comment = fields.String(allow_none=True)
    #: The API sets photo_items / event_items / can_* on the ticket before dumping it.
    photos = fields.List(fields.Nested(TicketStagePhotoSchema), required=True, attribute="photo_items")
    events = fields.List(fields.Nested(TicketEventSchema), required=True, attribute="event_items",
                         metadata={"description": "The timeline, oldest first"})
    can_cancel = fields.Boolean(required=True, metadata={"description": "POST /cancel is allowed"})
    can_rate = fields.Boolean(required=True, metadata={"description": "POST /rating is allowed (resolved)"})
    can_reopen = fields.Boolean(required=True, metadata={"description": "POST /reopen is allowed (resolved)"})
