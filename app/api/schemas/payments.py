"""Schemas of POST /payments (a WeChat Pay JSAPI order for bills)."""
from marshmallow import Schema, fields, validate

from app.api.schemas.common import MAX_ID

#: Most bills one order may cover.
MAX_BILLS_PER_ORDER = 50


class PaymentCreateSchema(Schema):
    bill_ids = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID)),
        required=True,
        validate=validate.Length(min=1, max=MAX_BILLS_PER_ORDER),
        metadata={"description": "Ids of the merchant's unpaid bills to pay together"},
    )


class RequestPaymentSchema(Schema):
    """Exactly what wx.requestPayment takes (signType RSA, paySign over appid/timeStamp/nonceStr/package)."""

    timeStamp = fields.String(required=True)  # noqa: N815 (WeChat's names)
    nonceStr = fields.String(required=True)  # noqa: N815
    package = fields.String(required=True, metadata={"description": "prepay_id=..."})
    signType = fields.String(required=True, metadata={"description": "Always RSA"})  # noqa: N815
    paySign = fields.String(required=True)  # noqa: N815


class PaymentOrderStatusSchema(Schema):
    out_trade_no = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "open (not paid yet) / paid / closed"})
    amount_fen = fields.Integer(required=True)
    bill_ids = fields.List(fields.Integer(), required=True)
    paid_at = fields.DateTime(allow_none=True, attribute="paid_dt", metadata={"description": "UTC, when paid"})
    expires_at = fields.DateTime(required=True, attribute="expires_dt")


class PaymentOrderSchema(Schema):
    out_trade_no = fields.String(required=True, metadata={"description": "Our order number at WeChat Pay"})
    amount_fen = fields.Integer(required=True, metadata={"description": "Outstanding total of the bills, fen"})
    bill_ids = fields.List(fields.Integer(), required=True)
    status = fields.String(required=True, metadata={"description": "open / paid / closed"})
    expires_at = fields.DateTime(required=True, attribute="expires_dt",
                                 metadata={"description": "After this the order cannot be paid"})
    is_reused = fields.Boolean(required=True, metadata={"description": "True when an open order was reused"})
    pay_params = fields.Nested(RequestPaymentSchema, required=True,
                               metadata={"description": "Pass to wx.requestPayment as is"})
