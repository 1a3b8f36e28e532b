"""Spreadsheets clerks exchange: read uploaded CSV/XLSX as text rows, write error files,
templates and formatted XLSX reports.

Reading streams: rows are produced one at a time, so a 200,000-row upload needs constant memory.
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import tempfile
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import xlsxwriter

from app.utils.dates import to_local

__all__ = [
    "TableError",
    "TableReader",
    "Row",
    "read_table",
    "write_error_file",
    "write_template",
    "write_xlsx_report",
    "ERROR_COLUMN",
]

#: Title of the column write_error_file() appends.
ERROR_COLUMN = "错误原因"

CSV_EXTENSIONS = {".csv", ".tsv", ".txt"}
XLSX_EXTENSIONS = {".xlsx", ".xlsm"}

#: How many non-blank rows at the top may precede the header (a title line, a note).
HEADER_SEARCH_ROWS = 10

_CHUNK = 1 << 16
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (BIFF in an OLE container)


class TableError(ValueError):
    """An uploaded table cannot be read; the message is meant for the clerk (Chinese)."""


class Row(dict):
    """One data row: canonical key -> cell text; ``cells`` holds the original cells in file order."""

    __slots__ = ("cells",)

    def __init__(self, values, cells):
        super().__init__(values)
        self.cells = cells


def normalize_header(text) -> str:
    """Header text folded for matching: NFKC, casefolded, no whitespace, no '*' marks."""
    s = unicodedata.normalize("NFKC", str(text or ""))
    s = "".join(s.split()).casefold()
    return s.strip("*")


class TableReader:
    """Iterator of (line_no, Row) over an uploaded table; close() it (or use ``with``)."""

    def __init__(self, fmt, rows, closers, columns, required, encoding=None, delimiter=None):
        self.format = fmt  #: "csv" or "xlsx"
        self.encoding = encoding  #: CSV: "utf-8-sig", "utf-8" or "gb18030"; None for xlsx
        self.delimiter = delimiter  #: CSV: "," or "\t"; None for xlsx
        self._rows = rows  # iterator of (line_no, list[str])
        self._closers = closers
        try:
            self._find_header(columns, set(required))
        except BaseException:
            self.close()
            raise

    def _find_header(self, columns, required):
        """Locate the header row and map its columns to canonical keys."""
        unknown = required - set(columns)
        if unknown:
            raise KeyError(f"required keys not in columns: {sorted(unknown)}")
        columns = {key: [aliases] if isinstance(aliases, str) else list(aliases) for key, aliases in columns.items()}
        alias_to_key = {}
        for key, aliases in columns.items():
            for alias in [key, *aliases]:
                alias_to_key.setdefault(normalize_header(alias), key)

        def mapping_of(cells):
            found = {}
            for index, cell in enumerate(cells):
                key = alias_to_key.get(normalize_header(cell))
                if key is not None:
                    found.setdefault(key, []).append(index)
            return found

        def label(key):
            return columns[key][0] if columns[key] else key

        best = header = None  # best: the row with most known columns, for the error message
        searched = 0
        for line_no, cells in self._rows:
            if not any(cells):
                continue
            found = mapping_of(cells)
            if best is None or len(found) > len(best[2]):
                best = (line_no, cells, found)
            if found and required <= set(found):
                header = (line_no, cells, found)
                break
            searched += 1
            if searched >= HEADER_SEARCH_ROWS:
                break
        if header is None:
            if best is None:
                raise TableError("文件中没有数据（找不到表头行）")
            found = best[2]
            missing = [label(k) for k in columns if k in required and k not in found]
            if missing:
                raise TableError("缺少必需的列：" + "、".join(missing) + "（请检查表头行）")
            raise TableError("表头中没有可识别的列：" + "、".join(c for c in best[1] if c))
        line_no, cells, found = header
        duplicated = [label(k) for k, idx in found.items() if len(idx) > 1]
        if duplicated:
            raise TableError("表头中有重复的列：" + "、".join(duplicated))
        self.header_line = line_no  #: 1-based line (row) of the header in the file
        self.headers = list(cells)  #: the header texts as in the file
        self.columns_present = set(found)  #: canonical keys found in the header
        self._index = {key: idx[0] for key, idx in found.items()}
        self._keys = list(columns)

    def __iter__(self):
        return self

    def __next__(self):
        index = self._index
        for line_no, cells in self._rows:
            if not any(cells):
                continue
            width = len(cells)
            values = {key: (cells[index[key]] if key in index and index[key] < width else "") for key in self._keys}
            return line_no, Row(values, cells)
        self.close()
        raise StopIteration

    def close(self):
        """Release the file (and the temporary copy, if one was made)."""
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                closer()
            except Exception:  # closing must not hide the real error
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _open_binary(source):
    """Return (seekable binary file, closers) for a path or a binary file object."""
    if isinstance(source, (str, os.PathLike)):
        try:
            fh = open(source, "rb")
        except OSError as exc:
            raise TableError(f"无法打开文件：{exc.strerror or exc}") from exc
        return fh, [fh.close]
    if not hasattr(source, "read"):
        raise TypeError("read_table() expects a path or a binary file object")
    seekable = getattr(source, "seekable", None)
    if seekable is not None and seekable():
        return source, []
    # Uploads that cannot seek (a raw request stream) are copied to a spooled temporary file.
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    shutil.copyfileobj(source, spool, _CHUNK)
    spool.seek(0)
    return spool, [spool.close]


def _detect_encoding(fh) -> str:
    """Guess a CSV's encoding in one streaming pass: BOM, else strict UTF-8, else GB18030."""
    start = fh.tell()
    head = fh.read(4)
    if not isinstance(head, bytes):
        raise TypeError("read_table() needs a binary file object (opened with 'rb')")
    if head.startswith(codecs.BOM_UTF8):
        fh.seek(start)
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        fh.seek(start)
        raise TableError("不支持 UTF-16 编码的文件，请在 Excel 中另存为“CSV UTF-8”或 .xlsx")
    fh.seek(start)
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    gb = codecs.getincrementaldecoder("gb18030")("strict")
    utf8_ok = gb_ok = True
    while True:
        chunk = fh.read(_CHUNK)
        final = not chunk
        if b"\x00" in chunk:
            fh.seek(start)
            raise TableError("文件不是文本格式的 CSV（含有二进制内容），请上传 CSV 或 .xlsx 文件")
        if utf8_ok:
            try:
                utf8.decode(chunk, final)
            except UnicodeDecodeError:
                utf8_ok = False
        if not utf8_ok and gb_ok:
            try:
                gb.decode(chunk, final)
            except UnicodeDecodeError:
                gb_ok = False
        if final or not (utf8_ok or gb_ok):
            break
    fh.seek(start)
    if utf8_ok:
        return "utf-8"
    if gb_ok:
        # The GB18030 decoder only started once UTF-8 failed: check the whole file from the top.
        fh.seek(start)
        gb = codecs.getincrementaldecoder("gb18030")("strict")
        try:
            while True:
                chunk = fh.read(_CHUNK)
                gb.decode(chunk, not chunk)
                if not chunk:
                    break
        except UnicodeDecodeError:
            gb_ok = False
        fh.seek(start)
    if gb_ok:
        return "gb18030"
    raise TableError("无法识别文件编码（支持 UTF-8 和 GBK/GB18030），请另存为“CSV UTF-8”或 .xlsx")


def _csv_rows(fh, encoding, delimiter):
    """Yield (line_no, stripped cells) from a text CSV; line_no is where the record starts."""
    reader = csv.reader(fh, delimiter=delimiter)
    next_line = 1
    try:
        for cells in reader:
            line_no = next_line
            next_line = reader.line_num + 1
            yield line_no, [c.strip() for c in cells]
    except csv.Error as exc:
        raise TableError(f"第 {reader.line_num} 行 CSV 格式错误：{exc}") from exc
    except UnicodeDecodeError as exc:  # pragma: no cover - detection read the whole file
        raise TableError("文件编码不一致，无法读取") from exc


def _sniff_delimiter(text_fh) -> str:
    """Comma or tab, whichever the first non-blank lines (up to 10) use more."""
    start = text_fh.tell()
    commas = tabs = seen = 0
    while seen < HEADER_SEARCH_ROWS:
        line = text_fh.readline()
        if not line:
            break
        if line.strip():
            seen += 1
            commas += line.count(",")
            tabs += line.count("\t")
    text_fh.seek(start)
    return "\t" if tabs > commas else ","


def _open_csv(fh, closers, columns, required):
    """Build a TableReader over a CSV file."""
    encoding = _detect_encoding(fh)
    text = io.TextIOWrapper(fh, encoding=encoding, newline="")
    # A file we opened is closed with the wrapper; the caller's own file is only detached.
    closers.append(text.close if closers else text.detach)
    delimiter = _sniff_delimiter(text)
    return TableReader("csv", _csv_rows(text, encoding, delimiter), closers, columns, required,
                       encoding=encoding, delimiter=delimiter)


def cell_text(value) -> str:
    """An XLSX cell value as the text a clerk sees: 1200.0 -> "1200", dates -> "YYYY-MM-DD"."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return ""
        # Excel keeps 15 significant digits: 0.30000000000000004 -> "0.3", 1e-05 -> "0.00001".
        text = format(Decimal(format(value, ".15g")), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.strftime("%Y-%m-%d")
        if value.second or value.microsecond:
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")
    if isinstance(value, timedelta):
        return str(value)
    return str(value).strip()


def _xlsx_rows(sheet):
    """Yield (row number, cell texts) from the first sheet, streaming."""
    try:
        for row_no, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1):
            yield row_no, [cell_text(v) for v in values]
    except Exception as exc:
        raise TableError(f"Excel 文件已损坏，无法读取（{type(exc).__name__}）") from exc


def _open_xlsx(fh, closers, columns, required):
    """Build a TableReader over the first worksheet of an XLSX file."""
    import openpyxl  # imported here: only uploads need it

    try:
        workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except Exception as exc:
        raise TableError("Excel 文件已损坏或不是 .xlsx 格式，无法读取") from exc
    closers.append(workbook.close)
    if not workbook.worksheets:
        raise TableError("Excel 文件中没有工作表")
    sheet = workbook.worksheets[0]
    # The stored dimension can be wrong (some exporters write "A1"): read to the real end.
    sheet.reset_dimensions()
    return TableReader("xlsx", _xlsx_rows(sheet), closers, columns, required)


def read_table(source, filename=None, columns=None, required=()) -> TableReader:
    """Open an uploaded .csv/.xlsx as a streaming TableReader of (line_no, Row); TableError if unreadable."""
    # columns maps canonical keys to header aliases (matched ignoring case, width and whitespace;
    # the first alias names the column in error messages); required lists keys that must be there.
    # Every key of columns is in each Row ("" when the column is absent; reader.columns_present
    # tells which were found). The header is the first non-blank row, or the first of the top 10
    # rows that holds every required column (a title line above the header is skipped).
    if columns is None:
        raise TypeError("read_table() needs columns={canonical_key: [header aliases]}")
    if filename is None:
        filename = os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "filename", "") or getattr(source, "name", "")
    ext = os.path.splitext(str(filename or ""))[1].lower()
    fh, closers = _open_binary(source)
    try:
        start = fh.tell()
        magic = fh.read(8)
        fh.seek(start)
        if not isinstance(magic, bytes):
            raise TypeError("read_table() needs a binary file object (opened with 'rb')")
        if not magic:
            raise TableError("文件是空的")
        if magic.startswith(_OLE_MAGIC):
            raise TableError("不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV 后再上传")
        if magic.startswith(_ZIP_MAGIC):
            if ext in CSV_EXTENSIONS or ext in XLSX_EXTENSIONS or not ext:
                return _open_xlsx(fh, closers, columns, required)
        elif ext in XLSX_EXTENSIONS:
            raise TableError("文件扩展名是 .xlsx，但内容不是 Excel 文件，无法读取")
        elif ext in CSV_EXTENSIONS or not ext:
            return _open_csv(fh, closers, columns, required)
        raise TableError(f"不支持的文件类型“{ext or filename}”，请上传 .xlsx 或 .csv 文件")
    except BaseException:
        for closer in reversed(closers):
            try:
                closer()
            except Exception:
                pass
        raise


# --- writing ---------------------------------------------------------------------------------


def _cell_str(value) -> str:
    """Any value as text for CSV output."""
    if value is None:
        return ""
    if isinstance(value, float):
        raise TypeError("floats are not written to tables: pass text, int or Decimal")
    if isinstance(value, (date, datetime, time)):
        return cell_text(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _write_csv(target, rows):
    """Write rows as CSV: UTF-8 with BOM (Excel opens it correctly), CRLF line ends."""
    if isinstance(target, (str, os.PathLike)):
        with open(target, "w", encoding="utf-8-sig", newline="") as fh:
            return _write_csv_text(fh, rows)
    text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="")
    try:
        return _write_csv_text(text, rows)
    finally:
        text.flush()
        text.detach()


def _write_csv_text(fh, rows):
    """Write rows into a text file with the csv module; return the number of data rows."""
    writer = csv.writer(fh, lineterminator="\r\n")
    count = -1
    for count, row in enumerate(rows):
        writer.writerow([_cell_str(v) for v in row])
    return max(count, 0)


def display_width(text) -> int:
    """Width of text in Excel character units: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))


def _fit_width(chars) -> float:
    """Excel column width for a text of the given display width."""
    return min(max(chars + 2, 8), 60)


def write_error_file(target, fmt, headers, rows) -> int:
    """Write rejected rows (original columns plus "错误原因") for the clerk to fix and re-upload."""
    # rows yields (cells, reason); cells are padded or cut to the header width so the reason
    # always lands in the last column. Returns the number of rows written.
    headers = [_cell_str(h) for h in headers]
    width = len(headers)

    def lines():
        yield headers + [ERROR_COLUMN]
        for cells, reason in rows:
            cells = [_cell_str(c) for c in list(cells)[:width]]
            cells += [""] * (width - len(cells))
            yield cells + [_cell_str(reason)]

    if fmt == "csv":
        return _write_csv(target, lines())
    if fmt == "xlsx":
        return _write_text_xlsx(target, lines(), sheet_name="错误行", highlight_last=True)
    raise ValueError(f"unknown format {fmt!r}: use 'csv' or 'xlsx'")


def write_template(target, fmt, headers, example_rows=()) -> None:
    """Write a downloadable import template: the header row and example rows."""
    headers = [_cell_str(h) for h in headers]

    def lines():
        yield headers
        for row in example_rows:
            yield [_cell_str(c) for c in row]

    if fmt == "csv":
        _write_csv(target, lines())
    elif fmt == "xlsx":
        _write_text_xlsx(target, lines(), sheet_name="导入模板", text_columns=len(headers))
    else:
        raise ValueError(f"unknown format {fmt!r}: use 'csv' or 'xlsx'")


def _write_text_xlsx(target, lines, sheet_name, highlight_last=False, text_columns=0):
    """Write rows of text to one sheet (first row bold and frozen); return the data row count."""
    # Every cell goes through write_string: the values are the clerk's own text and must come
    # back unchanged (leading zeros of meter numbers) and are never taken as formulas.
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True})
    sheet = workbook.add_worksheet(sheet_name)
    bold = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "border": 1})
    text = workbook.add_format({"num_format": "@"})
    error = workbook.add_format({"font_color": "#C00000"})
    error_head = workbook.add_format({"bold": True, "bg_color": "#FDE9E9", "border": 1, "font_color": "#C00000"})
    widths = []
    row_no = -1
    ncols = 0
    for row_no, cells in enumerate(lines):
        ncols = max(ncols, len(cells))
        last = len(cells) - 1
        for col, value in enumerate(cells):
            fmt = None
            if row_no == 0:
                fmt = error_head if highlight_last and col == last else bold
            elif highlight_last and col == last:
                fmt = error
            if value == "" and fmt is None:
                continue
            sheet.write_string(row_no, col, value, fmt)
            if col >= len(widths):
                widths.extend([0] * (col + 1 - len(widths)))
            widths[col] = max(widths[col], display_width(value))
    for col, chars in enumerate(widths):
        # A template's columns are text-formatted, so typed numbers keep their leading zeros.
        sheet.set_column(col, col, _fit_width(chars), text if col < text_columns else None)
    sheet.freeze_panes(1, 0)
    if ncols:
        sheet.autofilter(0, 0, max(row_no, 0), ncols - 1)
    workbook.close()
    return max(row_no, 0)


_INVALID_SHEET_CHARS = str.maketrans({c: "_" for c in "[]:*?/\\"})


def _sheet_name(name, used) -> str:
    """A valid, unique Excel sheet name (31 characters, no []:*?/\\)."""
    base = (str(name or "Sheet").translate(_INVALID_SHEET_CHARS).strip("'") or "Sheet")[:31]
    candidate, n = base, 1
    while candidate.casefold() in used:
        n += 1
        suffix = f"({n})"
        candidate = base[: 31 - len(suffix)] + suffix
    used.add(candidate.casefold())
    return candidate


def write_xlsx_report(target, sheets) -> None:
    """Write a formatted XLSX report: bold frozen header, autofilter, fitted widths, yuan, dates."""
    # Each sheet is a dict: name, headers, rows (any iterable of lists, consumed once),
    # money_columns (header texts or 0-based indexes of columns holding int fen, shown in yuan as
    # "#,##0.00") and an optional title written above the header. Datetimes are shown in
    # Asia/Shanghai (naive ones taken as UTC, like app.utils.dates.to_local). Rows are written strictly in order, so the workbook uses xlsxwriter's
    # constant_memory mode (flat memory for 100k+ rows); keep every write in row order here:
    # constant_memory silently drops cells written to a row that was already flushed.
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True})
    try:
        formats = {
            "title": workbook.add_format({"bold": True, "font_size": 14}),
            "header": workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "border": 1,
                                           "text_wrap": True, "valign": "vcenter"}),
            "money": workbook.add_format({"num_format": "#,##0.00"}),
            "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
            "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
            "time": workbook.add_format({"num_format": "hh:mm"}),
        }
        used = set()
        for spec in sheets:
            _write_report_sheet(workbook, formats, spec, used)
        if not used:
            workbook.add_worksheet("Sheet1")
    finally:
        workbook.close()


def _write_report_sheet(workbook, formats, spec, used):
    """Write one sheet of write_xlsx_report()."""
    sheet = workbook.add_worksheet(_sheet_name(spec.get("name"), used))
    headers = [str(h) for h in spec.get("headers", [])]
    money = set()
    for m in spec.get("money_columns") or ():
        if isinstance(m, int) and not isinstance(m, bool):
            money.add(m)
        elif m in headers:
            money.add(headers.index(m))
        else:
            raise KeyError(f"money column {m!r} is not a header of sheet {spec.get('name')!r}")
    widths = [display_width(h) for h in headers]
    row = 0
    title = spec.get("title")
    if title:
        sheet.write_string(0, 0, str(title), formats["title"])
        sheet.set_row(0, 22)
        row = 1
    header_row = row
    for col, h in enumerate(headers):
        sheet.write_string(header_row, col, h, formats["header"])
    last_row = header_row
    ncols = len(headers)
    for values in spec.get("rows", ()):
        row += 1
        last_row = row
        for col, value in enumerate(values):
            if col >= len(widths):
                widths.extend([0] * (col + 1 - len(widths)))
            widths[col] = max(widths[col], _write_report_cell(sheet, formats, row, col, value, col in money))
        ncols = max(ncols, len(values))
    for col, chars in enumerate(widths):
        sheet.set_column(col, col, _fit_width(chars))
    sheet.freeze_panes(header_row + 1, 0)
    if ncols:
        sheet.autofilter(header_row, 0, last_row, ncols - 1)


def _write_report_cell(sheet, formats, row, col, value, is_money) -> int:
    """Write one report cell with the right type and format; return its display width."""
    if value is None or value == "":
        return 0
    if is_money:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"money column {col} needs int fen, got {type(value).__name__}")
        # The only float in money handling: the exact yuan Decimal becomes a float because a
        # numeric XLSX cell is an IEEE double; "#,##0.00" shows it exactly to the fen.
        sheet.write_number(row, col, float(Decimal(value) / 100), formats["money"])
        yuan, cents = divmod(abs(value), 100)
        return display_width(f"-{yuan:,}.{cents:02d}")
    if isinstance(value, bool):
        sheet.write_string(row, col, "是" if value else "否")
        return 2
    if isinstance(value, float):
        raise TypeError("floats are not written to reports: pass int, Decimal or text")
    if isinstance(value, int):
        sheet.write_number(row, col, value)
        return len(str(value))
    if isinstance(value, Decimal):
        # A quantity or rate (not money): the cell is a double; the text width is the Decimal's.
        sheet.write_number(row, col, float(value))
        return len(format(value, "f"))
    if isinstance(value, datetime):
        # Shown in Asia/Shanghai; naive values are taken as UTC (what SQLite hands back).
        value = to_local(value).replace(tzinfo=None)
        sheet.write_datetime(row, col, value, formats["datetime"])
        return 16
    if isinstance(value, date):
        sheet.write_datetime(row, col, datetime(value.year, value.month, value.day), formats["date"])
        return 10
    if isinstance(value, time):
        sheet.write_datetime(row, col, value, formats["time"])
        return 5
    text = str(value)
    # write_string, never write(): user text starting with "=" must not become a formula.
    sheet.write_string(row, col, text)
    return display_width(text)
