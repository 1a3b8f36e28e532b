"""All models, imported so that the metadata knows every table."""
from app.models import base  # noqa: F401  (naming convention first)
from app.models.alerts import FinanceAlert
from app.models.audit import AuditLog
from app.models.bills import Bill, BillingRun, BillLine, Charge
from app.models.fees import FeeItem, FeeTier
from app.models.latefees import LateFeeAccrual, LateFeeRule, LateFeeWaiver
from app.models.leases import Lease, LeaseFee, lease_units
from app.models.markets import Market, Zone, zone_managers
from app.models.merchants import Merchant
from app.models.meters import Meter, MeterReplacement
from app.models.notifications import MerchantNotification
from app.models.payments import Payment, PaymentAllocation, Refund
from app.models.readings import ImportBatch, ImportRowError, MeterReading
from app.models.tickets import Ticket, TicketEvent, TicketPhoto
from app.models.units import Unit
from app.models.wechat_users import ApiToken, MerchantBinding, WeChatUser
from app.models.wechatpay import PayNotification, PayOrder, TradeBillMismatch, pay_order_bills  # noqa: F401

__all__ = [
    "ApiToken",
    "MerchantBinding",
    "WeChatUser",
    "AuditLog",
    "FinanceAlert",
    "Bill",
    "BillLine",
    "BillingRun",
    "Charge",
    "LateFeeAccrual",
    "LateFeeRule",
    "LateFeeWaiver",
    "Payment",
    "PaymentAllocation",
    "Refund",
    "FeeItem",
    "FeeTier",
    "Lease",
    "LeaseFee",
    "Market",
    "Merchant",
    "Meter",
    "MeterReplacement",
    "MerchantNotification",
    "Ticket",
    "TicketEvent",
    "TicketPhoto",
    "Unit",
    "Zone",
    "lease_units",
    "zone_managers",
    "ImportBatch",
    "ImportRowError",
    "MeterReading",
]
