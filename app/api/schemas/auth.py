"""Login and binding schemas."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api.schemas.common import NO_CONTROL_CHARS_PATTERN, no_control_chars


class LoginSchema(Schema):
    code = fields.String(required=True, validate=[validate.Length(min=1, max=128), no_control_chars],
                         metadata={"description": "The code from wx.login()", "pattern": NO_CONTROL_CHARS_PATTERN})


class BindSchema(Schema):
    phone_code = fields.String(validate=[validate.Length(min=1, max=128), no_control_chars],
                               metadata={"description": "The code from a getPhoneNumber button",
                                         "pattern": NO_CONTROL_CHARS_PATTERN})
    bind_token = fields.String(validate=[validate.Length(min=1, max=1000), no_control_chars],
                               metadata={"description": "The scanned stall QR code (token or whole URL)",
                                         "pattern": NO_CONTROL_CHARS_PATTERN})

    #: Merged into the OpenAPI component (build_openapi): exactly one of the two fields.
    openapi_extra = {"oneOf": [{"required": ["phone_code"]}, {"required": ["bind_token"]}]}

    @validates_schema
    def _exactly_one(self, data, **kwargs):
        if bool(data.get("phone_code")) == bool(data.get("bind_token")):
            raise ValidationError("请提供 phone_code 或 bind_token 其中之一", "_schema")


class BoundMerchantSchema(Schema):
    merchant_id = fields.Integer(required=True)
    merchant_code = fields.String(required=True)
    merchant_name = fields.String(required=True)
    role = fields.String(required=True, metadata={"description": "owner | assistant"})
    bound_via = fields.String(required=True, metadata={"description": "phone | qr"})


class LoginResultSchema(Schema):
    token = fields.String(required=True, metadata={"description": "Bearer token; keep it secret"})
    expires_at = fields.DateTime(required=True, metadata={"description": "UTC, ISO 8601"})
    is_bound = fields.Boolean(required=True)
    merchants = fields.List(fields.Nested(BoundMerchantSchema), required=True)


class BindResultSchema(Schema):
    is_bound = fields.Boolean(required=True)
    merchants = fields.List(fields.Nested(BoundMerchantSchema), required=True)
    bound = fields.List(fields.Nested(BoundMerchantSchema), required=True,
                        metadata={"description": "The bindings made by this request"})


def binding_dump(binding) -> dict:
    """One binding as BoundMerchantSchema data."""
    return {
        "merchant_id": binding.merchant_id,
        "merchant_code": binding.merchant.code,
        "merchant_name": binding.merchant.name,
        "role": binding.role.value,
        "bound_via": binding.bound_via.value,
    }
