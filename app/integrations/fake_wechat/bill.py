"""The WeChat Pay trade bill (交易账单) file: detail header, backtick-prefixed rows, summary header and line.

Amounts in the file are yuan with two decimals, as in production; the fee is 0.60 % rounded half up.
"""
from __future__ import annotations

from datetime import date

from .state import FakeState

DETAIL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,"
    "退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
FEE_RATE_TEXT = "0.60%"


def yuan(fen: int) -> str:
    """Write integer fen as yuan with two decimals (-1 -> "-0.01")."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def fee_fen(amount_fen: int) -> int:
    """WeChat's 0.6 % fee in fen, rounded half up."""
    return (amount_fen * 6 + 500) // 1000


def _line(fields: list[str]) -> str:
    """One data line: every field prefixed with a backtick so spreadsheets keep long numbers intact."""
    return ",".join("`" + field for field in fields)


def build_trade_bill(appid: str, mchid: str, state: FakeState, bill_date: date, bill_type: str) -> bytes:
    """Build the bill of one day (Beijing time): payments by success time, refunds by acceptance time."""
    rows: list[list[str]] = []
    settled = refunded = fees = ordered = 0
    if bill_type in ("ALL", "SUCCESS"):
        for order in sorted(state.orders.values(), key=lambda o: o.success_dt or o.created_dt):
            if not order.is_paid or order.success_dt is None or order.success_dt.date() != bill_date:
                continue
            fee = fee_fen(order.total_fen)
            settled += order.total_fen
            ordered += order.total_fen
            fees += fee
            rows.append([
                order.success_dt.strftime("%Y-%m-%d %H:%M:%S"), appid, mchid, "0", "", order.transaction_id,
                order.out_trade_no, order.payer_openid, "JSAPI", "SUCCESS", "OTHERS", "CNY",
                yuan(order.total_fen), "0.00", "0", "0", "0.00", "0.00", "", "", order.description,
                order.attach, yuan(fee), FEE_RATE_TEXT, yuan(order.total_fen), "0.00", "",
            ])
    if bill_type in ("ALL", "REFUND"):
        for refund in sorted(state.refunds.values(), key=lambda r: r.created_dt):
            if refund.created_dt.date() != bill_date:
                continue
            order = state.orders[refund.out_trade_no]
            fee = -fee_fen(refund.refund_fen)
            refunded += refund.refund_fen
            fees += fee
            rows.append([
                refund.created_dt.strftime("%Y-%m-%d %H:%M:%S"), appid, mchid, "0", "", refund.transaction_id,
                refund.out_trade_no, order.payer_openid, "JSAPI", "REFUND", "OTHERS", "CNY",
                "0.00", "0.00", refund.refund_id, refund.out_refund_no, yuan(refund.refund_fen), "0.00",
                "ORIGINAL", refund.status, order.description, order.attach, yuan(fee), FEE_RATE_TEXT,
                "0.00", yuan(refund.refund_fen), "",
            ])
    summary = [str(len(rows)), yuan(settled), yuan(refunded), "0.00", yuan(fees), yuan(ordered), yuan(refunded)]
    lines = [DETAIL_HEADER, *(_line(row) for row in rows), SUMMARY_HEADER, _line(summary)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
