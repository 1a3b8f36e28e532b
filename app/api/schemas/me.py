"""The merchant's own profile (GET/PATCH /me)."""
from marshmallow import Schema, fields, validate

from app.api.schemas.auth import BoundMerchantSchema
from app.api.schemas.common import NO_CONTROL_CHARS_PATTERN, StrictBoolean, no_control_chars

PHONE_RE = r"^[0-9][0-9\- ]{4,19}$"


class ZoneBriefSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)


class UnitBriefSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    floor = fields.String()
    category = fields.String(allow_none=True)
    area_m2 = fields.Decimal(as_string=True, required=True,
                             metadata={"type": "string", "pattern": r"^\d+(\.\d+)?$", "description": "m², decimal string"})
    zone = fields.Nested(ZoneBriefSchema, required=True)


class NotifySettingsSchema(Schema):
    notify_wechat = fields.Boolean(required=True, metadata={"description": "WeChat subscribe messages"})
    notify_sms = fields.Boolean(required=True)
    notify_bill = fields.Boolean(required=True, metadata={"description": "New bills"})
    notify_overdue = fields.Boolean(required=True, metadata={"description": "Overdue reminders"})
    notify_ticket = fields.Boolean(required=True, metadata={"description": "Repair ticket updates"})


class MerchantProfileSchema(NotifySettingsSchema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    contact_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "Registered phone (changed by the market office)"})
    phone2 = fields.String(allow_none=True)
    credit_code = fields.String(allow_none=True)
    zone = fields.Nested(ZoneBriefSchema, allow_none=True)


class MeSchema(Schema):
    merchant = fields.Nested(MerchantProfileSchema, required=True)
    role = fields.String(required=True, metadata={"description": "owner | assistant (this user for this merchant)"})
    units = fields.List(fields.Nested(UnitBriefSchema), required=True)
    merchants = fields.List(fields.Nested(BoundMerchantSchema), required=True,
                            metadata={"description": "Every merchant this WeChat user may act for (X-Merchant-Id)"})
    subscribe_templates = fields.Dict(
        keys=fields.String(), values=fields.String(), required=True,
        metadata={"description": "Subscribe-message template ids by purpose (ticket_progress): pass them to "
                                 "wx.requestSubscribeMessage, or WeChat refuses to deliver (43101)"})


class MePatchSchema(Schema):
    """Only these fields may change; the name, phone and credit code are kept by the market office."""

    contact_name = fields.String(validate=[validate.Length(min=1, max=50), no_control_chars],
                                 metadata={"pattern": NO_CONTROL_CHARS_PATTERN})
    phone2 = fields.String(allow_none=True, validate=validate.Regexp(PHONE_RE, error="电话号码格式不正确"))
    notify_wechat = StrictBoolean()
    notify_sms = StrictBoolean()
    notify_bill = StrictBoolean()
    notify_overdue = StrictBoolean()
    notify_ticket = StrictBoolean()
