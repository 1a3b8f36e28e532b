"""Enumerations shared by models, services and the API (stable English values)."""
import enum

from flask_babel import lazy_gettext as _


class LabeledEnum(str, enum.Enum):
    """A str enum whose members carry a translated label."""

    def __str__(self):
        return str(self.label)

    @property
    def label(self):
        return self._labels().get(self.value, self.value)

    @classmethod
    def _labels(cls):
        return {}

    @classmethod
    def choices(cls):
        return [(m.value, m.label) for m in cls]


class MarketKind(LabeledEnum):
    market = "market"
    mall = "mall"

    @classmethod
    def _labels(cls):
        return {"market": _("Market"), "mall": _("Shopping mall")}


class UnitStatus(LabeledEnum):
    vacant = "vacant"
    leased = "leased"
    reserved = "reserved"
    renovating = "renovating"

    @classmethod
    def _labels(cls):
        return {
            "vacant": _("Vacant"),
            "leased": _("Leased"),
            "reserved": _("Reserved"),
            "renovating": _("Renovating"),
        }


class BillingCycle(LabeledEnum):
    monthly = "monthly"
    quarterly = "quarterly"
    yearly = "yearly"

    @property
    def months(self):
        return {"monthly": 1, "quarterly": 3, "yearly": 12}[self.value]

    @classmethod
    def _labels(cls):
        return {"monthly": _("Monthly"), "quarterly": _("Quarterly"), "yearly": _("Yearly")}


class LeaseStatus(LabeledEnum):
    draft = "draft"
    active = "active"
    expiring = "expiring"
    ended = "ended"

    @classmethod
    def _labels(cls):
        return {
            "draft": _("Draft"),
            "active": _("Active"),
            "expiring": _("Expiring"),
            "ended": _("Ended"),
        }


class FeeKind(LabeledEnum):
    rent = "rent"
    management = "management"
    water = "water"
    electricity = "electricity"
    sanitation = "sanitation"
    other = "other"

    @classmethod
    def _labels(cls):
        return {
            "rent": _("Rent"),
            "management": _("Management fee"),
            "water": _("Water"),
            "electricity": _("Electricity"),
            "sanitation": _("Sanitation"),
            "other": _("Other"),
        }


class PricingMode(LabeledEnum):
    fixed = "fixed"
    per_area = "per_area"
    metered = "metered"

    @classmethod
    def _labels(cls):
        return {"fixed": _("Fixed"), "per_area": _("Per m²"), "metered": _("Metered")}


class MeterType(LabeledEnum):
    water = "water"
    electricity = "electricity"

    @classmethod
    def _labels(cls):
        return {"water": _("Water"), "electricity": _("Electricity")}


class AuditAction(LabeledEnum):
    insert = "insert"
    update = "update"
    delete = "delete"
    bulk = "bulk"

    @classmethod
    def _labels(cls):
        return {"insert": _("Created"), "update": _("Updated"), "delete": _("Deleted"), "bulk": _("Bulk")}


class BillKind(LabeledEnum):
    regular = "regular"
    adjustment = "adjustment"
    adhoc = "adhoc"

    @classmethod
    def _labels(cls):
        return {"regular": _("Regular"), "adjustment": _("Adjustment"), "adhoc": _("One-off")}


class BillStatus(LabeledEnum):
    draft = "draft"
    issued = "issued"
    partially_paid = "partially_paid"
    paid = "paid"
    void = "void"

    @classmethod
    def _labels(cls):
        return {
            "draft": _("Draft"),
            "issued": _("Issued"),
            "partially_paid": _("Partially paid"),
            "paid": _("Paid"),
            "void": _("Void"),
        }


#: Bills that still expect money (overdue when their due date has passed).
OPEN_BILL_STATUSES = (BillStatus.issued, BillStatus.partially_paid)


class RunStatus(LabeledEnum):
    queued = "queued"
    running = "running"
    posted = "posted"
    failed = "failed"

    @classmethod
    def _labels(cls):
        return {"queued": _("Queued"), "running": _("Running"), "posted": _("Posted"), "failed": _("Failed")}


class ChargeStatus(LabeledEnum):
    pending = "pending"
    billed = "billed"
    cancelled = "cancelled"

    @classmethod
    def _labels(cls):
        return {"pending": _("Pending"), "billed": _("Billed"), "cancelled": _("Cancelled")}


class PaymentMethod(LabeledEnum):
    wechat = "wechat"
    cash = "cash"
    bank_transfer = "bank_transfer"

    @classmethod
    def _labels(cls):
        return {"wechat": _("WeChat Pay"), "cash": _("Cash"), "bank_transfer": _("Bank transfer")}


class PaymentStatus(LabeledEnum):
    pending = "pending"
    succeeded = "succeeded"
    closed = "closed"
    failed = "failed"

    @classmethod
    def _labels(cls):
        return {"pending": _("Pending"), "succeeded": _("Succeeded"), "closed": _("Closed"), "failed": _("Failed")}


class RefundStatus(LabeledEnum):
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"

    @classmethod
    def _labels(cls):
        return {"processing": _("Processing"), "succeeded": _("Succeeded"), "failed": _("Failed")}
