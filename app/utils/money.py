"""Money: integer fen everywhere; the one place that rounds, parses and formats amounts.

An amount of money is an ``int`` number of fen (1 yuan = 100 fen). Rates and quantities are
``Decimal``. ``float`` is refused with ``TypeError`` by every function here.
"""
from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Iterable

__all__ = [
    "to_fen",
    "parse_yuan",
    "format_yuan",
    "fen_to_yuan_str",
    "fen_to_yuan",
    "parse_yuan_rate",
    "format_yuan_rate",
    "amount_in_chinese",
    "apportion",
]

#: Largest absolute amount amount_in_chinese() spells: just under 1 万亿 yuan.
MAX_CHINESE_FEN = 10**12 * 100 - 1

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ("", "拾", "佰", "仟")  # position inside a group of four digits
_GROUP_UNITS = ("", "万", "亿")  # groups of four digits: units, 万, 亿

# "1,234.56" (groups of three) or "1234.56"; at most two decimals.
_YUAN_RE = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?")


def _check_fen(fen) -> None:
    """Raise TypeError unless fen is an int (bool and float refused)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money must be an int number of fen, got {type(fen).__name__}")


def to_fen(amount: Decimal) -> int:
    """Round a Decimal amount of fen (e.g. quantity x rate) half-up to integer fen."""
    if isinstance(amount, bool) or isinstance(amount, float):
        raise TypeError("to_fen() refuses float and bool: pass a Decimal amount of fen")
    if isinstance(amount, int):
        return amount
    if not isinstance(amount, Decimal):
        raise TypeError(f"to_fen() expects a Decimal, got {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"金额无效：{amount}")
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _split_yuan_text(text: str, caller: str, what: str) -> tuple[bool, str]:
    """Typed yuan text -> (negative, digits): full-width folded, sign, "¥" and "元" taken off."""
    if not isinstance(text, str):
        raise TypeError(f"{caller}() expects text, got {type(text).__name__}")
    # NFKC folds full-width input from Chinese IMEs: "１２３．５" "￥" "，" -> ASCII / "¥".
    s = unicodedata.normalize("NFKC", text).strip()
    if not s:
        raise ValueError(f"{what}不能为空")
    negative = False
    if s[0] in "-−":
        negative, s = True, s[1:].strip()
    if s[:1] == "¥":
        s = s[1:].strip()
    if not negative and s[:1] in "-−":
        negative, s = True, s[1:].strip()
    if s.endswith("元"):
        s = s[:-1].strip()
    return negative, s


def parse_yuan(text: str, allow_negative: bool = False) -> int:
    """Parse a yuan amount typed by a person ("1,234.56", "¥12", "12元") into fen."""
    negative, s = _split_yuan_text(text, "parse_yuan", "金额")
    if not _YUAN_RE.fullmatch(s):
        if re.fullmatch(r"[\d,]*\.\d{3,}", s):
            raise ValueError(f"金额最多保留两位小数：{text.strip()}")
        raise ValueError(f"金额格式不正确：{text.strip()}")
    whole, _, decimals = s.replace(",", "").partition(".")
    fen = int(whole) * 100 + int(decimals.ljust(2, "0"))
    if negative and fen:
        if not allow_negative:
            raise ValueError(f"金额不能为负数：{text.strip()}")
        fen = -fen
    return fen


def fen_to_yuan_str(fen: int) -> str:
    """Plain yuan text for exports and APIs: 123456 -> "1234.56", -5 -> "-0.05"."""
    _check_fen(fen)
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d}"


def fen_to_yuan(fen: int | Decimal) -> Decimal:
    """Exact yuan as a Decimal: 150050 -> Decimal("1500.50"), Decimal("75.5") fen -> Decimal("0.755")."""
    if isinstance(fen, Decimal):
        if not fen.is_finite():
            raise ValueError(f"金额无效：{fen}")
        return fen.scaleb(-2)
    _check_fen(fen)
    return Decimal(fen).scaleb(-2)


#: A price may carry fractions of a fen (Numeric(16, 4) columns): up to 6 decimals of yuan.
RATE_YUAN_PLACES = 6


def parse_yuan_rate(text: str, allow_negative: bool = False) -> Decimal:
    """Parse a unit price typed in yuan ("0.755", "¥60", "1,500.50元") into Decimal fen (75.5, 6000, 150050)."""
    negative, s = _split_yuan_text(text, "parse_yuan_rate", "单价")
    if not re.fullmatch(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?", s):
        raise ValueError(f"单价格式不正确：{text.strip()}")
    whole, _, decimals = s.replace(",", "").partition(".")
    if len(decimals) > RATE_YUAN_PLACES:
        raise ValueError(f"单价最多保留 {RATE_YUAN_PLACES} 位小数：{text.strip()}")
    fen = Decimal(f"{whole}.{decimals or '0'}").scaleb(2).normalize()
    if fen == fen.to_integral_value():
        fen = fen.quantize(Decimal(1))
    if negative and fen:
        if not allow_negative:
            raise ValueError(f"单价不能为负数：{text.strip()}")
        fen = -fen
    return fen


def format_yuan_rate(fen: Decimal | int, symbol: bool = True) -> str:
    """A unit price for people, at least two decimals: Decimal(6000) -> "¥60.00", Decimal("75.5") -> "¥0.755"."""
    if isinstance(fen, int) and not isinstance(fen, bool):
        fen = Decimal(fen)
    if not isinstance(fen, Decimal):
        raise TypeError(f"a price must be a Decimal number of fen, got {type(fen).__name__}")
    yuan = fen_to_yuan(fen)
    sign = "-" if yuan < 0 else ""
    text = format(abs(yuan).normalize(), "f")
    whole, _, decimals = text.partition(".")
    decimals = decimals.ljust(2, "0")
    return f"{sign}{'¥' if symbol else ''}{int(whole):,}.{decimals}"


def format_yuan(fen: int, symbol: bool = True) -> str:
    """Yuan for people: 123456 -> "¥1,234.56", -1200 -> "-¥12.00"."""
    _check_fen(fen)
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{'¥' if symbol else ''}{yuan:,}.{cents:02d}"


def _integer_in_chinese(n: int) -> str:
    """Spell a positive integer below 1 万亿 with financial capitals (壹仟零伍, 壹亿零壹万)."""
    digits = str(n)
    count = len(digits)
    out = []
    need_zero = False
    group_has_digit = False
    for i, ch in enumerate(digits):
        pos = count - 1 - i  # power of ten
        group, place = divmod(pos, 4)
        d = int(ch)
        if d:
            if need_zero:
                out.append("零")
            out.append(_DIGITS[d] + _SMALL_UNITS[place])
            need_zero = False
            group_has_digit = True
        elif out:
            need_zero = True
        if place == 0:
            if group_has_digit:
                out.append(_GROUP_UNITS[group])
                # Zeros at the end of a group are silent: 107000 -> 壹拾万柒仟, not 壹拾万零柒仟.
                need_zero = False
            group_has_digit = False
    return "".join(out)


def amount_in_chinese(fen: int) -> str:
    """Amount in Chinese financial capitals (人民币大写): 1234567 -> "壹万贰仟叁佰肆拾伍元陆角柒分"."""
    # Conventions (中国人民银行《支付结算办法》附件《正确填写票据和结算凭证的基本规定》):
    # "整" after 元 when there are no 角/分, none after 角 or 分; 拾 is always written 壹拾;
    # a run of zeros inside the number is one 零; trailing zeros of a 万/亿 group are silent;
    # "元零X角" when the 元 digit is 0 (100000.10 -> 壹拾万元零壹角), "元零X分" when 角 is 0.
    # Below one yuan: "伍角", "伍分". Negative amounts get "负". Up to (not incl.) 1 万亿 yuan.
    _check_fen(fen)
    if abs(fen) > MAX_CHINESE_FEN:
        raise ValueError("金额过大，无法转换为大写")
    sign = "负" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    jiao, fen_digit = divmod(cents, 10)
    if yuan == 0 and cents == 0:
        return "零元整"
    parts = []
    if yuan:
        parts.append(_integer_in_chinese(yuan) + "元")
        if cents == 0:
            parts.append("整")
        elif jiao == 0 or yuan % 10 == 0:
            parts.append("零")
    if jiao:
        parts.append(_DIGITS[jiao] + "角")
    if fen_digit:
        parts.append(_DIGITS[fen_digit] + "分")
    return sign + "".join(parts)


def apportion(total_fen: int, weights: Iterable[Decimal | int]) -> list[int]:
    """Split total_fen by weights (largest remainder) so the parts sum exactly to the total."""
    _check_fen(total_fen)
    weights = list(weights)
    if not weights:
        raise ValueError("分摊权重不能为空")
    fractions = []
    for w in weights:
        if isinstance(w, (bool, float)) or not isinstance(w, (int, Decimal)):
            raise TypeError(f"weights must be Decimal or int, got {type(w).__name__}")
        try:
            f = Fraction(w)
        except (ValueError, InvalidOperation, OverflowError):
            raise ValueError(f"分摊权重无效：{w}") from None
        if f < 0:
            raise ValueError(f"分摊权重不能为负数：{w}")
        fractions.append(f)
    weight_sum = sum(fractions)
    if weight_sum == 0:
        raise ValueError("分摊权重之和不能为零")
    sign = -1 if total_fen < 0 else 1
    total = abs(total_fen)
    shares = [total * f / weight_sum for f in fractions]
    parts = [int(s) for s in shares]  # floor: shares are non-negative
    left = total - sum(parts)
    # The largest remainders get one more fen each; ties go to the earlier weight.
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return [sign * p for p in parts]
