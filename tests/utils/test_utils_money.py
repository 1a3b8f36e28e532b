"""Money helpers: half-up rounding, yuan parsing and formatting, 大写, apportioning."""
import random
from decimal import Decimal

import pytest

from app.utils.money import (
    amount_in_chinese,
    apportion,
    fen_to_yuan,
    fen_to_yuan_str,
    format_yuan,
    format_yuan_rate,
    parse_yuan,
    parse_yuan_rate,
    to_fen,
)


@pytest.mark.parametrize(
    "amount, fen",
    [
        (Decimal("0.5"), 1),
        (Decimal("1.5"), 2),
        (Decimal("2.5"), 3),  # half-up, not banker's rounding
        (Decimal("2.4999"), 2),
        (Decimal("-0.5"), -1),  # half away from zero
        (Decimal("-2.5"), -3),
        (Decimal("0"), 0),
        (Decimal("1234.5") * Decimal("85"), 104933),  # 1234.5 kWh x 0.85 yuan = 104932.5 fen
        (Decimal("36") * Decimal("420"), 15120),
        (Decimal("100.50"), 101),
        (Decimal("1E+2"), 100),
        (7, 7),
    ],
)
def test_to_fen_rounds_half_up(amount, fen):
    assert to_fen(amount) == fen
    assert type(to_fen(amount)) is int


@pytest.mark.parametrize("bad", [1.5, 0.0, True, "1.5", None])
def test_to_fen_refuses_float_and_non_decimal(bad):
    with pytest.raises(TypeError):
        to_fen(bad)


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_to_fen_refuses_non_finite(bad):
    with pytest.raises(ValueError):
        to_fen(bad)


@pytest.mark.parametrize(
    "text, fen",
    [
        ("1,234.56", 123456),
        ("1234.5", 123450),
        ("1234", 123400),
        ("¥12", 1200),
        ("￥12", 1200),  # full-width yuan sign
        ("12元", 1200),
        ("¥1,234.56元", 123456),
        ("  0.05 ", 5),
        ("0", 0),
        ("0.00", 0),
        ("1,000,000.10", 100000010),
        ("１２３．４５", 12345),  # full-width digits from a Chinese IME
        ("12 元", 1200),
        ("¥ 12", 1200),
        ("007", 700),
        ("99999999999999999999.99", 9999999999999999999999),  # exact, no float
    ],
)
def test_parse_yuan(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    ["", "   ", "1.234", "0.001", "abc", "1,23.00", "12,3456", "12.3.4", "1e3", "¥", "元", "1.",
     ".5", "+5", "1 234", "12元元", "NaN", "Infinity", "¥¥1", "--5", "5-"],
)
def test_parse_yuan_rejects_bad_text_in_chinese(text):
    with pytest.raises(ValueError) as exc:
        parse_yuan(text)
    assert "金额" in str(exc.value)


def test_parse_yuan_more_than_two_decimals_message():
    with pytest.raises(ValueError, match="两位小数"):
        parse_yuan("12.345")


def test_parse_yuan_negative_needs_permission():
    with pytest.raises(ValueError, match="负数"):
        parse_yuan("-12")
    assert parse_yuan("-12", allow_negative=True) == -1200
    assert parse_yuan("-¥1,234.50", allow_negative=True) == -123450
    assert parse_yuan("¥-0.05", allow_negative=True) == -5
    assert parse_yuan("-0") == 0  # minus zero is zero, not a negative amount


@pytest.mark.parametrize("bad", [12.5, 12, Decimal("12"), None, b"12"])
def test_parse_yuan_needs_text(bad):
    with pytest.raises(TypeError):
        parse_yuan(bad)


@pytest.mark.parametrize(
    "fen, shown, plain",
    [
        (123456, "¥1,234.56", "1234.56"),
        (0, "¥0.00", "0.00"),
        (5, "¥0.05", "0.05"),
        (100, "¥1.00", "1.00"),
        (-1200, "-¥12.00", "-12.00"),
        (-5, "-¥0.05", "-0.05"),
        (100000000000, "¥1,000,000,000.00", "1000000000.00"),
    ],
)
def test_format_yuan_and_plain(fen, shown, plain):
    assert format_yuan(fen) == shown
    assert format_yuan(fen, symbol=False) == shown.replace("¥", "")
    assert fen_to_yuan_str(fen) == plain


@pytest.mark.parametrize("bad", [12.0, Decimal("12"), "12", True])
def test_format_refuses_non_int(bad):
    for func in (format_yuan, fen_to_yuan_str, amount_in_chinese):
        with pytest.raises(TypeError):
            func(bad)


def test_parse_format_round_trip():
    rng = random.Random(20261123)
    samples = [0, 1, 9, 10, 99, 100, 101, 999999, 1000000, 123456789] + [rng.randrange(-10**12, 10**12) for _ in range(500)]
    for fen in samples:
        assert parse_yuan(format_yuan(fen), allow_negative=True) == fen
        assert parse_yuan(format_yuan(fen, symbol=False), allow_negative=True) == fen
        assert parse_yuan(fen_to_yuan_str(fen), allow_negative=True) == fen


@pytest.mark.parametrize(
    "yuan, words",
    [
        # From the brief and the PBOC filling rules (《正确填写票据和结算凭证的基本规定》).
        ("12345.67", "壹万贰仟叁佰肆拾伍元陆角柒分"),
        ("100.00", "壹佰元整"),
        ("0.00", "零元整"),
        ("1005.00", "壹仟零伍元整"),
        ("100000.10", "壹拾万元零壹角"),
        ("10.05", "壹拾元零伍分"),
        ("1409.50", "壹仟肆佰零玖元伍角"),
        ("6007.14", "陆仟零柒元壹角肆分"),
        ("1680.32", "壹仟陆佰捌拾元零叁角贰分"),
        ("107000.53", "壹拾万柒仟元零伍角叁分"),
        ("16409.02", "壹万陆仟肆佰零玖元零贰分"),
        ("325.04", "叁佰贰拾伍元零肆分"),
        # Small amounts.
        ("0.01", "壹分"),
        ("0.05", "伍分"),
        ("0.10", "壹角"),
        ("0.50", "伍角"),
        ("0.55", "伍角伍分"),
        ("1.00", "壹元整"),
        ("1.01", "壹元零壹分"),
        ("1.10", "壹元壹角"),
        ("1.11", "壹元壹角壹分"),
        # 拾 always with 壹, zeros inside a group.
        ("10.00", "壹拾元整"),
        ("11.00", "壹拾壹元整"),
        ("20.00", "贰拾元整"),
        ("110.00", "壹佰壹拾元整"),
        ("101.00", "壹佰零壹元整"),
        ("1010.00", "壹仟零壹拾元整"),
        ("1001.00", "壹仟零壹元整"),
        ("1100.00", "壹仟壹佰元整"),
        ("100.50", "壹佰元零伍角"),
        ("9999.99", "玖仟玖佰玖拾玖元玖角玖分"),
        # 万 boundaries.
        ("10000.00", "壹万元整"),
        ("10001.00", "壹万零壹元整"),
        ("10010.00", "壹万零壹拾元整"),
        ("10100.00", "壹万零壹佰元整"),
        ("11000.00", "壹万壹仟元整"),
        ("100001.00", "壹拾万零壹元整"),
        ("1000000.00", "壹佰万元整"),
        ("10000000.00", "壹仟万元整"),
        ("10050000.00", "壹仟零伍万元整"),
        ("10005000.00", "壹仟万伍仟元整"),
        ("12000000.00", "壹仟贰佰万元整"),
        ("30000001.00", "叁仟万零壹元整"),
        # 亿 boundaries.
        ("100000000.00", "壹亿元整"),
        ("100010000.00", "壹亿零壹万元整"),
        ("100000001.00", "壹亿零壹元整"),
        ("100001000.00", "壹亿零壹仟元整"),
        ("100100000.00", "壹亿零壹拾万元整"),
        ("110000000.00", "壹亿壹仟万元整"),
        ("1000000000.00", "壹拾亿元整"),
        ("1200030000.00", "壹拾贰亿零叁万元整"),
        ("10000000000.00", "壹佰亿元整"),
        ("100000000000.00", "壹仟亿元整"),
        ("100000000000.01", "壹仟亿元零壹分"),
        ("999999999999.99", "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
        ("123456789012.34", "壹仟贰佰叁拾肆亿伍仟陆佰柒拾捌万玖仟零壹拾贰元叁角肆分"),
    ],
)
def test_amount_in_chinese(yuan, words):
    assert amount_in_chinese(parse_yuan(yuan)) == words


def test_amount_in_chinese_negative_and_limits():
    assert amount_in_chinese(-1200) == "负壹拾贰元整"
    assert amount_in_chinese(-5) == "负伍分"
    with pytest.raises(ValueError):
        amount_in_chinese(10**12 * 100)  # 1 万亿 yuan
    with pytest.raises(ValueError):
        amount_in_chinese(-(10**12 * 100))


def test_amount_in_chinese_only_uses_capital_characters():
    allowed = set("零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整负")
    rng = random.Random(7)
    for _ in range(2000):
        words = amount_in_chinese(rng.randrange(0, 10**14))
        assert set(words) <= allowed
        assert "零零" not in words
        assert not words.startswith("零") or words == "零元整"


@pytest.mark.parametrize(
    "total, weights, parts",
    [
        (100, [Decimal(1)] * 3, [34, 33, 33]),
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (0, [1, 2], [0, 0]),
        (10, [Decimal("0"), Decimal("1")], [0, 10]),
        (1000, [Decimal("0.2"), Decimal("0.3"), Decimal("0.5")], [200, 300, 500]),
        (101, [Decimal("1"), Decimal("1")], [51, 50]),  # tie: the earlier weight gets the fen
        (5, [Decimal("1")] * 7, [1, 1, 1, 1, 1, 0, 0]),
        (100, [Decimal("12.5"), Decimal("30.25"), Decimal("57.25")], [13, 30, 57]),  # 12.5, 30.25, 57.25
        (999, [Decimal("48.5"), Decimal("32.0"), Decimal("19.5")], [484, 320, 195]),  # 484.515, 319.68, 194.805
    ],
)
def test_apportion_examples(total, weights, parts):
    assert apportion(total, weights) == parts


def test_apportion_sums_exactly_and_stays_within_one_fen():
    rng = random.Random(42)
    for _ in range(500):
        total = rng.randrange(-10**9, 10**9)
        weights = [Decimal(rng.randrange(0, 10**6)) / Decimal(1000) for _ in range(rng.randrange(1, 30))]
        if not any(weights):
            weights[0] = Decimal(1)
        parts = apportion(total, weights)
        assert sum(parts) == total
        assert all(type(p) is int for p in parts)
        weight_sum = sum(weights)
        for part, weight in zip(parts, weights):
            exact = Decimal(total) * weight / weight_sum
            assert abs(Decimal(part) - exact) < 1


@pytest.mark.parametrize(
    "total, weights, error",
    [
        (100, [], ValueError),
        (100, [Decimal(0), Decimal(0)], ValueError),
        (100, [Decimal(-1), Decimal(2)], ValueError),
        (100, [Decimal("NaN")], ValueError),
        (100, [0.5, 0.5], TypeError),
        (100.0, [Decimal(1)], TypeError),
        (100, ["1"], TypeError),
    ],
)
def test_apportion_rejects(total, weights, error):
    with pytest.raises(error):
        apportion(total, weights)


# --- unit prices in yuan (Numeric fen columns, fractions of a fen allowed) ---------------------


@pytest.mark.parametrize(
    "text, fen",
    [
        ("60", Decimal("6000")),
        ("¥60.00", Decimal("6000")),
        ("0.68", Decimal("68")),
        ("0.755", Decimal("75.5")),
        ("45.0075", Decimal("4500.75")),
        ("1,500.50元", Decimal("150050")),
        ("０．６８", Decimal("68")),
        ("0.000001", Decimal("0.0001")),
    ],
)
def test_parse_yuan_rate(text, fen):
    parsed = parse_yuan_rate(text)
    assert parsed == fen and isinstance(parsed, Decimal)


@pytest.mark.parametrize(
    "text, message",
    [("abc", "单价格式不正确"), ("1.2.3", "单价格式不正确"), ("0.0000001", "最多保留 6 位小数"),
     ("-1", "单价不能为负数"), ("", "单价不能为空")],
)
def test_parse_yuan_rate_rejects_bad_text_in_chinese(text, message):
    with pytest.raises(ValueError, match=message):
        parse_yuan_rate(text)


@pytest.mark.parametrize(
    "fen, shown",
    [(Decimal("6000"), "¥60.00"), (Decimal("6000.0000"), "¥60.00"), (Decimal("75.5"), "¥0.755"),
     (Decimal("4500.75"), "¥45.0075"), (Decimal("150050"), "¥1,500.50"), (Decimal("-12"), "-¥0.12"), (68, "¥0.68")],
)
def test_format_yuan_rate(fen, shown):
    assert format_yuan_rate(fen) == shown
    assert parse_yuan_rate(format_yuan_rate(fen), allow_negative=True) == Decimal(fen)


def test_fen_to_yuan_is_exact():
    assert fen_to_yuan(150050) == Decimal("1500.50")
    assert fen_to_yuan(Decimal("75.5")) == Decimal("0.755")
    assert fen_to_yuan(-5) == Decimal("-0.05")
    with pytest.raises(TypeError):
        fen_to_yuan(1500.5)
    with pytest.raises(TypeError):
        format_yuan_rate(0.68)
