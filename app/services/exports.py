"""Spreadsheet exports of back office lists."""
from __future__ import annotations

import decimal
import enum
from datetime import date, datetime

import xlsxwriter

from app.utils.dates import to_local
from app.utils.money import fen_to_yuan

#: Excel number formats of money cells: the cell holds yuan, Excel shows ¥1,500.50 (-¥12.00).
YUAN_FORMAT = '"¥"#,##0.00;-"¥"#,##0.00'
#: Unit prices may carry fractions of a fen: two to six decimals of yuan (¥0.755).
YUAN_RATE_FORMAT = '"¥"#,##0.00####;-"¥"#,##0.00####'


def is_money_column(name: str) -> bool:
    """A column (or property) that holds fen: its name ends in _fen; *_micro_fen are not fen."""
    last = name.rsplit(".", 1)[-1]
    return last.endswith("_fen") and not last.endswith("_micro_fen")


def yuan_cell_value(fen) -> float:
    """The number written to a money cell: exact yuan (Decimal) from fen, then Excel's double.

    fen / 100 goes through Decimal, so the double is the one nearest to the exact yuan amount and
    reads back as 1500.5 for 150050 fen (exact to the fen for any amount below 10^13 fen).
    """
    return float(fen_to_yuan(fen))


def _value(item, column):
    value = item
    for part in column.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    if callable(value):
        value = value()
    return value


def _sheet_name(title):
    """Excel sheet names: at most 31 characters, none of []:*?/\\."""
    name = "".join("_" if ch in '[]:*?/\\' else ch for ch in str(title or "")).strip("'")
    return name[:31] or "Sheet1"


def export_query_xlsx(fileobj, title, columns, labels, items):
    """Write items as an XLSX sheet: money columns (*_fen) in yuan, dates as dates."""
    workbook = xlsxwriter.Workbook(fileobj, {"in_memory": True})
    sheet = workbook.add_worksheet(_sheet_name(title))
    bold = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "border": 1})
    money = workbook.add_format({"num_format": YUAN_FORMAT})
    rate = workbook.add_format({"num_format": YUAN_RATE_FORMAT})
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    stamp = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, labels, bold)
    sheet.freeze_panes(1, 0)
    widths = [max(8, len(str(label)) * 2 + 2) for label in labels]
    row = 0
    for row, item in enumerate(items, start=1):
        for col, column in enumerate(columns):
            value = _value(item, column)
            if value is None:
                sheet.write_blank(row, col, None)
            elif is_money_column(column) and isinstance(value, int) and not isinstance(value, bool):
                # fen -> yuan only at the cell: the stored figure stays integer fen.
                sheet.write_number(row, col, yuan_cell_value(value), money)
            elif is_money_column(column) and isinstance(value, decimal.Decimal):
                # Unit prices in (fractional) fen: yuan with up to six decimals.
                sheet.write_number(row, col, yuan_cell_value(value), rate)
            elif isinstance(value, datetime):
                sheet.write_datetime(row, col, to_local(value).replace(tzinfo=None), stamp)
            elif isinstance(value, date):
                sheet.write_datetime(row, col, datetime(value.year, value.month, value.day), day)
            elif isinstance(value, bool):
                sheet.write_string(row, col, "是" if value else "否")
            elif isinstance(value, decimal.Decimal):
                sheet.write_number(row, col, float(value))
            elif isinstance(value, int):
                sheet.write_number(row, col, value)
            elif isinstance(value, enum.Enum):
                sheet.write_string(row, col, str(value))
            else:
                text = str(value)
                sheet.write_string(row, col, text)
                widths[col] = min(max(widths[col], len(text) * 2), 60)
    for col, width in enumerate(widths):
        sheet.set_column(col, col, width)
    if row:
        sheet.autofilter(0, 0, row, len(columns) - 1)
    workbook.close()
