"""In-memory state of the fake: tokens, login and phone codes, messages, orders, refunds."""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .protocol import now_cst, rfc3339

TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "CLOSED": "订单已关闭",
    "REFUND": "转入退款",
}


def _digits(count: int) -> str:
    """Random decimal digits."""
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_prepay_id() -> str:
    """A prepay_id shaped like WeChat's: wx + yyyyMMddHHmmss + 20 hex."""
    return "wx" + now_cst().strftime("%Y%m%d%H%M%S") + secrets.token_hex(10)


def new_transaction_id() -> str:
    """A 28-digit WeChat Pay transaction id."""
    return "42000" + now_cst().strftime("%Y%m%d") + _digits(15)


def new_refund_id() -> str:
    """A 29-digit WeChat Pay refund id."""
    return "50" + _digits(9) + now_cst().strftime("%Y%m%d") + _digits(10)


def new_notification_id() -> str:
    """A notification id (the same id is reused when a notification is sent again)."""
    return "EV-" + now_cst().strftime("%Y%m%d%H%M%S") + _digits(8)


@dataclass
class Order:
    """One JSAPI order as WeChat Pay keeps it; money in fen."""

    out_trade_no: str
    appid: str
    mchid: str
    description: str
    total_fen: int
    payer_openid: str
    notify_url: str
    attach: str = ""
    time_expire: datetime | None = None
    prepay_id: str = field(default_factory=new_prepay_id)
    transaction_id: str = field(default_factory=new_transaction_id)
    notification_id: str = field(default_factory=new_notification_id)
    trade_state: str = "NOTPAY"
    created_dt: datetime = field(default_factory=now_cst)
    success_dt: datetime | None = None

    def same_request(self, other: "Order") -> bool:
        """True when a repeated order request carries the same parameters."""
        keys = ("appid", "mchid", "description", "total_fen", "payer_openid", "notify_url", "attach", "time_expire")
        return all(getattr(self, key) == getattr(other, key) for key in keys)

    @property
    def is_paid(self) -> bool:
        """Paid orders are SUCCESS, or REFUND once a refund was requested."""
        return self.trade_state in ("SUCCESS", "REFUND")

    def view(self) -> dict[str, Any]:
        """The transaction as query answers and TRANSACTION.SUCCESS notifications show it."""
        data: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": self.trade_state,
            "trade_state_desc": TRADE_STATE_DESC[self.trade_state],
            "attach": self.attach,
            "payer": {"openid": self.payer_openid},
            "amount": {"total": self.total_fen, "currency": "CNY", "payer_currency": "CNY"},
        }
        if self.is_paid:
            data["transaction_id"] = self.transaction_id
            data["bank_type"] = "OTHERS"
            data["success_time"] = rfc3339(self.success_dt or now_cst())
            data["amount"]["payer_total"] = self.total_fen
        return data


@dataclass
class Refund:
    """One refund of an order; money in fen."""

    out_refund_no: str
    out_trade_no: str
    transaction_id: str
    refund_fen: int
    total_fen: int
    reason: str
    notify_url: str
    refund_id: str = field(default_factory=new_refund_id)
    notification_id: str = field(default_factory=new_notification_id)
    status: str = "PROCESSING"
    created_dt: datetime = field(default_factory=now_cst)
    success_dt: datetime | None = None

    @property
    def holds_money(self) -> bool:
        """A refund counts against the order unless it was closed or went abnormal."""
        return self.status in ("PROCESSING", "SUCCESS")

    def view(self) -> dict[str, Any]:
        """The refund as the refund APIs answer it."""
        data: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339(self.created_dt),
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total_fen,
                "refund": self.refund_fen,
                "payer_total": self.total_fen,
                "payer_refund": self.refund_fen,
                "settlement_total": self.total_fen,
                "settlement_refund": self.refund_fen,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
        }
        if self.success_dt:
            data["success_time"] = rfc3339(self.success_dt)
        return data

    def notification_view(self, mchid: str) -> dict[str, Any]:
        """The refund as REFUND.* notifications carry it."""
        data: dict[str, Any] = {
            "mchid": mchid,
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "out_refund_no": self.out_refund_no,
            "refund_id": self.refund_id,
            "refund_status": self.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": self.total_fen,
                "refund": self.refund_fen,
                "payer_total": self.total_fen,
                "payer_refund": self.refund_fen,
            },
        }
        if self.success_dt:
            data["success_time"] = rfc3339(self.success_dt)
        return data


class FakeState:
    """Everything the fake remembers between requests; one lock guards it all."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget tokens, codes, messages, orders, refunds and bills (keys stay)."""
        with self.lock:
            self.tokens: dict[str, float] = {}
            self.expired_tokens: set[str] = set()
            self.tokens_issued = 0
            self.login_codes: dict[str, dict[str, str | None]] = {}
            self.used_login_codes: set[str] = set()
            self.phone_codes: dict[str, dict[str, str]] = {}
            self.used_phone_codes: set[str] = set()
            self.messages: list[dict[str, Any]] = []
            self.orders: dict[str, Order] = {}
            self.refunds: dict[str, Refund] = {}
            self.bills: dict[str, tuple[bytes, float]] = {}
            self.deliveries: list[dict[str, Any]] = []

    def refundable_fen(self, order: Order) -> int:
        """What is left to refund on an order."""
        taken = sum(r.refund_fen for r in self.refunds.values() if r.out_trade_no == order.out_trade_no and r.holds_money)
        return order.total_fen - taken

    def order_by_transaction_id(self, transaction_id: str) -> Order | None:
        """Find a paid order by WeChat's transaction id."""
        for order in self.orders.values():
            if order.is_paid and order.transaction_id == transaction_id:
                return order
        return None
