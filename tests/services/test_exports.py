"""Back office exports produce workbooks Excel opens."""
import io

import openpyxl

from app.services.exports import export_query_xlsx


class _Row:
    def __init__(self, code, deposit_fen):
        self.code = code
        self.deposit_fen = deposit_fen


def test_sheet_title_with_forbidden_characters_and_money_in_yuan():
    buf = io.BytesIO()
    export_query_xlsx(buf, "摊位/铺位 [全部]", ["code", "deposit_fen"], ["编号", "押金"],
                      [_Row("A-001", 180000), _Row("A-002", 5)])
    book = openpyxl.load_workbook(io.BytesIO(buf.getvalue()))
    sheet = book.active
    assert sheet.title == "摊位_铺位 _全部_"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("编号", "押金")
    assert rows[1] == ("A-001", 1800)
    assert rows[2] == ("A-002", 0.05)
