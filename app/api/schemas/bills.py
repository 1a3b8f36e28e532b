"""Bills as the merchant sees them. Money is integer fen."""
from marshmallow import Schema, fields, validate

from app.utils.dates import today_local
from app.api.schemas.common import PageQuerySchema, page_schema

DECIMAL_STRING = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}


class BillListQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(["unpaid", "overdue", "paid"]),
                           metadata={"description": "unpaid = issued or partially paid; overdue = unpaid and "
                                                    "past the due date; paid. Omitted: every bill but void ones."})


class BillSummarySchema(Schema):
    id = fields.Integer(required=True)
    number = fields.String(required=True)
    kind = fields.Function(lambda b: b.kind.value, required=True, metadata={"description": "regular | adjustment | adhoc"})
    status = fields.Function(lambda b: b.status.value, required=True,
                             metadata={"description": "issued | partially_paid | paid"})
    period = fields.Function(lambda b: f"{b.period.year:04d}-{b.period.month:02d}", required=True,
                             metadata={"description": "YYYY-MM"})
    issue_date = fields.Date(required=True)
    due_date = fields.Date(required=True, metadata={"description": "Asia/Shanghai date"})
    amount_fen = fields.Integer(required=True, metadata={"description": "Sum of the lines, fen"})
    late_fee_fen = fields.Integer(required=True, metadata={"description": "Late fee accrued net of waivers, fen"})
    paid_fen = fields.Integer(required=True)
    outstanding_fen = fields.Integer(required=True, metadata={"description": "amount + late fee - paid, fen"})
    is_overdue = fields.Method("_is_overdue", required=True,
                               metadata={"type": "boolean", "description": "Unpaid and the due date has passed"})
    unit_codes = fields.Function(lambda b: getattr(b, "unit_codes", []), required=True,
                                 metadata={"type": "array", "items": {"type": "string"},
                                           "description": "The stalls the bill is for (A-001 ...)"})

    def _is_overdue(self, bill) -> bool:
        return bill.is_overdue_on(today_local())


BillPageSchema = page_schema(BillSummarySchema, "BillPage")


class BillLineSchema(Schema):
    id = fields.Integer(required=True)
    description = fields.String(required=True)
    unit_id = fields.Integer(allow_none=True)
    unit_code = fields.String(allow_none=True)
    quantity = fields.Decimal(as_string=True, required=True, metadata=DECIMAL_STRING)
    unit_label = fields.String(allow_none=True)
    rate_fen = fields.Decimal(as_string=True, allow_none=True,
                              metadata={**DECIMAL_STRING, "description": "fen per unit, may have fractions"})
    amount_fen = fields.Integer(required=True)
    service_start = fields.Date(allow_none=True)
    service_end = fields.Date(allow_none=True)


class BillPaymentSchema(Schema):
    id = fields.Integer(required=True)
    method = fields.String(required=True, metadata={"description": "wechat | cash | bank_transfer"})
    amount_fen = fields.Integer(required=True, metadata={"description": "Part of the payment applied to this bill"})
    paid_dt = fields.DateTime(allow_none=True, metadata={"description": "UTC"})
    receipt_no = fields.String(allow_none=True)


class BillDetailSchema(BillSummarySchema):
    paid_dt = fields.DateTime(allow_none=True, metadata={"description": "UTC; set when fully paid"})
    receipt_no = fields.String(allow_none=True)
    has_receipt = fields.Function(lambda b: b.status.value == "paid" and bool(b.receipt_no), required=True,
                                  metadata={"description": "GET /bills/{id}/receipt answers a PDF"})
    note = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(BillLineSchema), required=True)
    payments = fields.List(fields.Nested(BillPaymentSchema), required=True)
