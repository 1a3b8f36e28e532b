"""Schemas shared by every resource: the error envelope, pagination."""
import re

from marshmallow import Schema, ValidationError, fields, validate

#: Largest id a database integer column holds: larger ids in a body are refused (422), in a path not found.
MAX_ID = 2**31 - 1
#: Largest page_size a list accepts.
MAX_PAGE_SIZE = 50
#: Largest page number accepted (keeps OFFSET within every database's integer range).
MAX_PAGE = 100_000


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable English key, e.g. bill_not_found"})
    message = fields.String(required=True, metadata={"description": "Chinese message for the user"})
    details = fields.Dict(metadata={"description": "Optional, e.g. {fields: {...}} for 422"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class PageQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE),
                          metadata={"description": "1-based page number"})
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
                               metadata={"description": f"Items per page, at most {MAX_PAGE_SIZE}"})


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """A {items, page, page_size, total} schema class for a list of item_schema."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "page": fields.Integer(required=True),
            "page_size": fields.Integer(required=True),
            "total": fields.Integer(required=True),
        },
        name=name,
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: The same rule for the OpenAPI document (ECMA regex): text without those control characters.
NO_CONTROL_CHARS_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"


def no_control_chars(value: str) -> None:
    """A marshmallow validator: text without NUL and other control characters."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValidationError("不能包含控制字符")


class StrictBoolean(fields.Boolean):
    """A JSON true/false only (marshmallow's Boolean also takes 0/1 and strings such as "off" or "yes")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def has_nul(data) -> bool:
    """Whether a decoded JSON value holds a NUL character anywhere (no database column stores one)."""
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, dict):
        return any(has_nul(k) or has_nul(v) for k, v in data.items())
    if isinstance(data, list):
        return any(has_nul(v) for v in data)
    return False
