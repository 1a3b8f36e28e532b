"""Reading the spreadsheets clerks upload and writing error files, templates and reports."""
import codecs
import csv
import io
import os
import zipfile
from datetime import date, datetime, time, timezone
from decimal import Decimal

import openpyxl
import pytest

from app.utils.tabular import (
    ERROR_COLUMN,
    TableError,
    read_table,
    write_error_file,
    write_template,
    write_xlsx_report,
)

COLUMNS = {
    "meter_no": ["表号", "meter number", "meter_no"],
    "reading": ["本期读数", "reading"],
    "read_on": ["抄表日期", "date"],
    "note": ["备注", "note"],
}
REQUIRED = {"meter_no", "reading"}

CSV_TEXT = (
    "表号, 本期读数 ,抄表日期,备注\r\n"
    "E-001,1234.5,2026-11-01,一楼东侧\r\n"
    "\r\n"
    ",,,\r\n"
    "E-002,  88 ,2026-11-02,\r\n"
    '"E-003","1,200","2026-11-03","多行\r\n备注"\r\n'
    "E-004,7\r\n"
)
EXPECTED = [
    (2, {"meter_no": "E-001", "reading": "1234.5", "read_on": "2026-11-01", "note": "一楼东侧"}),
    (5, {"meter_no": "E-002", "reading": "88", "read_on": "2026-11-02", "note": ""}),
    (6, {"meter_no": "E-003", "reading": "1,200", "read_on": "2026-11-03", "note": "多行\r\n备注"}),
    (8, {"meter_no": "E-004", "reading": "7", "read_on": "", "note": ""}),
]


def read_all(data, filename, columns=COLUMNS, required=REQUIRED):
    with read_table(io.BytesIO(data), filename, columns, required) as reader:
        return reader, list(reader)


@pytest.mark.parametrize(
    "encoded, encoding",
    [
        (CSV_TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + CSV_TEXT.encode("utf-8"), "utf-8-sig"),
        (CSV_TEXT.encode("gbk"), "gb18030"),
        (CSV_TEXT.encode("gb18030"), "gb18030"),
        (CSV_TEXT.replace("\r\n", "\n").encode("gbk"), "gb18030"),
    ],
    ids=["utf8", "utf8-bom", "gbk", "gb18030", "gbk-lf"],
)
def test_read_csv_encodings(encoded, encoding):
    reader, rows = read_all(encoded, "抄表.csv")
    assert reader.encoding == encoding
    assert reader.format == "csv"
    assert reader.delimiter == ","
    assert reader.headers == ["表号", "本期读数", "抄表日期", "备注"]
    assert reader.columns_present == {"meter_no", "reading", "read_on", "note"}
    expected = EXPECTED
    if "\r\n" not in encoded.decode(encoding):
        expected = [(n, {**r, "note": r["note"].replace("\r\n", "\n")}) for n, r in EXPECTED]
    assert [(n, dict(r)) for n, r in rows] == expected
    assert rows[0][1].cells == ["E-001", "1234.5", "2026-11-01", "一楼东侧"]


def test_read_tab_delimited_with_english_headers_any_case_and_spacing():
    data = "  Meter   Number\tREADING\tNote\nA-1\t5\tok\n".encode("utf-8")
    reader, rows = read_all(data, "x.CSV")
    assert reader.delimiter == "\t"
    assert reader.headers == ["Meter   Number", "READING", "Note"]
    assert rows == [(2, {"meter_no": "A-1", "reading": "5", "read_on": "", "note": "ok"})]
    assert reader.columns_present == {"meter_no", "reading", "note"}


def test_full_width_and_starred_headers_match():
    data = "＊表号,本期读数（ ）\r\nA,1\r\n".encode("utf-8")
    with pytest.raises(TableError):  # "本期读数（ ）" is not an alias
        read_all(data, "x.csv")
    data = "*表号,本 期 读 数\r\nA,1\r\n".encode("utf-8")
    _, rows = read_all(data, "x.csv")
    assert rows == [(2, {"meter_no": "A", "reading": "1", "read_on": "", "note": ""})]


def test_title_line_above_header_is_skipped():
    data = "2026年11月 水电表抄表记录,,\r\n表号,本期读数,备注\r\nW-9,3,\r\n".encode("gbk")
    reader, rows = read_all(data, "t.csv")
    assert reader.header_line == 2
    assert rows == [(3, {"meter_no": "W-9", "reading": "3", "read_on": "", "note": ""})]


def test_missing_required_columns_are_listed_in_chinese():
    data = "表号,备注\r\nA,x\r\n".encode("utf-8")
    with pytest.raises(TableError) as exc:
        read_all(data, "x.csv", required={"meter_no", "reading", "read_on"})
    message = str(exc.value)
    assert "缺少必需的列" in message
    assert "本期读数" in message and "抄表日期" in message
    assert "表号" not in message


def test_duplicate_column_is_an_error():
    data = "表号,meter_no,本期读数\r\nA,B,1\r\n".encode("utf-8")
    with pytest.raises(TableError, match="重复"):
        read_all(data, "x.csv")


@pytest.mark.parametrize(
    "data, filename",
    [
        (b"", "empty.csv"),
        (b"\r\n\r\n,,\r\n", "blank.csv"),
        (bytes(range(256)) * 40, "garbage.csv"),
        (os.urandom(4096) + b"\x00", "random.csv"),
        (b"\xff\xfe\xfa\x80\x81" * 100, "bad-encoding.csv"),
        (os.urandom(2048), "random.xlsx"),
        (b"PK\x03\x04" + os.urandom(2048), "broken.xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(512), "old.xls"),
        (b"%PDF-1.4 not a table", "report.pdf"),
        ("表号,本期读数\r\nA,1\r\n".encode("utf-16"), "utf16.csv"),
        (b"meter,reading\r\nA,1\r\n", "a.xlsx"),
    ],
    ids=["empty", "blank", "bytes", "random", "bad-encoding", "random-xlsx", "broken-zip", "xls",
         "pdf", "utf16", "csv-named-xlsx"],
)
def test_unreadable_files_raise_table_error(data, filename):
    with pytest.raises(TableError) as exc:
        read_all(data, filename)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(exc.value))  # a Chinese message


def test_zip_that_is_not_a_workbook():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "not excel")
    with pytest.raises(TableError, match="Excel"):
        read_all(buf.getvalue(), "fake.xlsx")


def make_xlsx(rows, title="抄表"):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_read_xlsx_numbers_and_dates_as_text():
    data = make_xlsx([
        ["Meter Number ", "本期读数", "抄表日期", "备注"],
        ["E-001", 123.4, datetime(2026, 11, 1), None],
        [],
        [1001, 1200.0, date(2026, 11, 2), "  有空格  "],
        ["E-003", 0.1 + 0.2, datetime(2026, 11, 3, 8, 30), 12],
        ["E-004", 1e-05, "2026/11/04", True],
        ["E-005", 123456789012, None, Decimal("1.50")],
        [None, None, None, None],
        ["E-006", -0.0, time(9, 15), 3.0],
    ])
    reader, rows = read_all(data, "抄表.xlsx")
    assert reader.format == "xlsx" and reader.encoding is None
    assert reader.headers == ["Meter Number", "本期读数", "抄表日期", "备注"]
    assert [(n, dict(r)) for n, r in rows] == [
        (2, {"meter_no": "E-001", "reading": "123.4", "read_on": "2026-11-01", "note": ""}),
        (4, {"meter_no": "1001", "reading": "1200", "read_on": "2026-11-02", "note": "有空格"}),
        (5, {"meter_no": "E-003", "reading": "0.3", "read_on": "2026-11-03 08:30", "note": "12"}),
        (6, {"meter_no": "E-004", "reading": "0.00001", "read_on": "2026/11/04", "note": "TRUE"}),
        (7, {"meter_no": "E-005", "reading": "123456789012", "read_on": "", "note": "1.5"}),
        (9, {"meter_no": "E-006", "reading": "0", "read_on": "09:15", "note": "3"}),
    ]


def test_read_xlsx_from_path_and_wrong_dimension(tmp_path):
    path = tmp_path / "readings.xlsx"
    path.write_bytes(make_xlsx([["表号", "本期读数"]] + [[f"M{i}", i] for i in range(1, 51)]))
    # Rewrite the stored dimension as "A1" (some exporters do): rows must still all be read.
    fixed = tmp_path / "fixed.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(fixed, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                body = body.replace(b'<dimension ref="A1:B51" />', b'<dimension ref="A1" />')
                assert b'<dimension ref="A1" />' in body
            dst.writestr(item, body)
    with read_table(fixed, None, COLUMNS, REQUIRED) as reader:
        rows = list(reader)
    assert len(rows) == 50
    assert rows[-1] == (51, {"meter_no": "M50", "reading": "50", "read_on": "", "note": ""})


def test_xlsx_bytes_with_csv_extension_are_read_as_xlsx():
    data = make_xlsx([["表号", "本期读数"], ["A", 2]])
    reader, rows = read_all(data, "renamed.csv")
    assert reader.format == "xlsx"
    assert rows == [(2, {"meter_no": "A", "reading": "2", "read_on": "", "note": ""})]


def test_non_seekable_upload_stream():
    class Stream(io.RawIOBase):
        def __init__(self, data):
            self._inner = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self._inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    with read_table(Stream(CSV_TEXT.encode("gbk")), "x.csv", COLUMNS, REQUIRED) as reader:
        assert [n for n, _ in reader] == [2, 5, 6, 8]


def test_caller_file_is_left_open():
    buf = io.BytesIO(CSV_TEXT.encode("utf-8"))
    with read_table(buf, "x.csv", COLUMNS, REQUIRED) as reader:
        next(reader)
    assert not buf.closed


def test_large_csv_streams(tmp_path):
    path = tmp_path / "big.csv"
    n = 200_000
    with open(path, "w", encoding="gbk", newline="") as fh:
        fh.write("表号,本期读数,备注\r\n")
        for i in range(n):
            fh.write(f"M{i:06d},{i}.5,第{i}行\r\n")
    reader = read_table(str(path), "big.csv", COLUMNS, REQUIRED)
    assert iter(reader) is reader  # an iterator, not a list built up front
    count = 0
    last = None
    for line_no, row in reader:
        count += 1
        last = (line_no, row["meter_no"], row["note"])
    assert count == n
    assert last == (n + 1, f"M{n - 1:06d}", f"第{n - 1}行")
    assert reader.encoding == "gb18030"


def test_error_file_csv_reads_back(tmp_path):
    headers = ["表号", "本期读数", "备注"]
    rows = [(["000123", "12.5", "=cmd|' /C calc'!A0"], "读数小于上期读数"), (["E-2"], "表号不存在")]
    path = tmp_path / "errors.csv"
    assert write_error_file(str(path), "csv", headers, rows) == 2
    raw = path.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert raw.count(b"\r\n") == 3 and b"\n" not in raw.replace(b"\r\n", b"")
    columns = {**COLUMNS, "reason": [ERROR_COLUMN]}
    with read_table(str(path), "errors.csv", columns, REQUIRED | {"reason"}) as reader:
        back = list(reader)
        assert reader.headers == headers + [ERROR_COLUMN]
    assert back[0][1]["meter_no"] == "000123"
    assert back[0][1]["note"] == "=cmd|' /C calc'!A0"
    assert back[0][1]["reason"] == "读数小于上期读数"
    assert back[1][1].cells == ["E-2", "", "", "表号不存在"]


def test_error_file_xlsx_reads_back():
    buf = io.BytesIO()
    write_error_file(buf, "xlsx", ["表号", "本期读数"], [(["000123", "12.5"], "读数为空"), (["=1+1", "", "extra"], "格式错误")])
    buf.seek(0)
    wb = openpyxl.load_workbook(buf)
    ws = wb.active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values == [["表号", "本期读数", ERROR_COLUMN], ["000123", "12.5", "读数为空"], ["=1+1", None, "格式错误"]]
    assert ws["A3"].data_type == "s"  # text, never a formula
    assert ws["A1"].font.b
    assert ws.freeze_panes == "A2"
    buf.seek(0)
    columns = {**COLUMNS, "reason": [ERROR_COLUMN]}
    with read_table(buf, "errors.xlsx", columns, REQUIRED) as reader:
        assert [r["reason"] for _, r in reader] == ["读数为空", "格式错误"]


def test_error_file_to_file_object_csv():
    buf = io.BytesIO()
    write_error_file(buf, "csv", ["表号"], iter([(["A"], "原因")]))
    assert not buf.closed
    assert buf.getvalue().decode("utf-8-sig") == "表号,错误原因\r\nA,原因\r\n"
    with pytest.raises(ValueError):
        write_error_file(io.BytesIO(), "xls", ["表号"], [])


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_template_round_trip(fmt):
    buf = io.BytesIO()
    write_template(buf, fmt, ["表号", "本期读数", "抄表日期", "备注"], [["000123", "1234.5", "2026-11-01", "示例"]])
    buf.seek(0)
    with read_table(buf, f"template.{fmt}", COLUMNS, REQUIRED) as reader:
        rows = list(reader)
    assert rows == [(2, {"meter_no": "000123", "reading": "1234.5", "read_on": "2026-11-01", "note": "示例"})]
    if fmt == "xlsx":
        buf.seek(0)
        ws = openpyxl.load_workbook(buf).active
        assert ws.column_dimensions["A"].width >= 8
        assert ws["A2"].number_format == "@"  # text: typed meter numbers keep leading zeros


def test_xlsx_report_reads_back(tmp_path):
    path = tmp_path / "report.xlsx"
    paid = datetime(2026, 11, 23, 6, 5, tzinfo=timezone.utc)
    write_xlsx_report(str(path), [
        {
            "name": "11月账单",
            "title": "2026年11月 账单汇总",
            "headers": ["商户", "铺位", "应收金额", "实收", "账期", "收款时间", "用电量", "已缴"],
            "money_columns": {"应收金额", 3},
            "rows": iter([
                ["张三水产批发部", "A-101", 123456, 100, date(2026, 11, 1), paid, Decimal("1234.5"), True],
                ["=HYPERLINK(\"http://x\")", "B-2", -5, None, None, None, 12, False],
            ]),
        },
        {"name": "说明/备注:[1]", "headers": ["项目"], "rows": [["空"]]},
    ])
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["11月账单", "说明_备注__1_"]
    ws = wb["11月账单"]
    assert ws["A1"].value == "2026年11月 账单汇总"
    assert [c.value for c in ws[2]] == ["商户", "铺位", "应收金额", "实收", "账期", "收款时间", "用电量", "已缴"]
    assert all(c.font.b for c in ws[2])
    assert ws.freeze_panes == "A3"
    assert ws.auto_filter.ref == "A2:H4"
    assert ws["C3"].value == 1234.56 and ws["C3"].number_format == "#,##0.00"
    assert ws["D3"].value == 1 and ws["D3"].number_format == "#,##0.00"
    assert ws["C4"].value == -0.05
    assert ws["E3"].value == datetime(2026, 11, 1) and ws["E3"].is_date
    assert ws["F3"].value == datetime(2026, 11, 23, 14, 5)  # shown in Asia/Shanghai
    assert ws["G3"].value == 1234.5
    assert ws["H3"].value == "是"
    assert ws["A4"].value == '=HYPERLINK("http://x")' and ws["A4"].data_type == "s"
    # Chinese text gets a wider column than its character count.
    assert ws.column_dimensions["A"].width >= 2 * len("张三水产批发部")


def test_xlsx_report_refuses_float_money_and_unknown_column():
    with pytest.raises(TypeError):
        write_xlsx_report(io.BytesIO(), [{"name": "s", "headers": ["金额"], "rows": [[1.5]], "money_columns": {"金额"}}])
    with pytest.raises(TypeError):
        write_xlsx_report(io.BytesIO(), [{"name": "s", "headers": ["数量"], "rows": [[1.5]]}])
    with pytest.raises(KeyError):
        write_xlsx_report(io.BytesIO(), [{"name": "s", "headers": ["金额"], "rows": [], "money_columns": {"合计"}}])


def test_xlsx_report_many_rows_in_order(tmp_path):
    path = tmp_path / "big.xlsx"
    n = 20_000
    write_xlsx_report(str(path), [{
        "name": "明细", "headers": ["序号", "金额"], "money_columns": {1},
        "rows": ([i, i * 100 + 1] for i in range(n)),
    }])
    ws = openpyxl.load_workbook(path, read_only=True).active
    values = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(values) == n
    assert values[-1] == (n - 1, float(Decimal((n - 1) * 100 + 1) / 100))
    with open(path, "rb") as fh:
        assert fh.read(2) == b"PK"


def test_csv_written_opens_in_python_csv_with_bom():
    buf = io.BytesIO()
    write_template(buf, "csv", ["表号", "备注"], [["A", "含,逗号"], ["B", '含"引号']])
    text = buf.getvalue().decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["表号", "备注"], ["A", "含,逗号"], ["B", '含"引号']]


def test_xlsx_header_only_and_empty_workbook():
    reader, rows = read_all(make_xlsx([["表号", "本期读数"]]), "h.xlsx")
    assert rows == [] and reader.header_line == 1
    with pytest.raises(TableError, match="没有数据"):
        read_all(make_xlsx([]), "empty.xlsx")
    with pytest.raises(TableError, match="本期读数"):
        read_all(make_xlsx([["表号", "读数"], ["A", 1]]), "wrong.xlsx")


def test_single_alias_given_as_text():
    _, rows = read_all("编号,值\r\n1,2\r\n".encode("utf-8"), "x.csv", {"code": "编号", "value": ["值"]}, {"code"})
    assert rows == [(2, {"code": "1", "value": "2"})]
