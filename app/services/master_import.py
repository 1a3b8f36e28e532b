"""Onboarding import (期初导入): a market's existing spreadsheets of fee items, units, merchants,
meters with their opening readings, leases and lease prices, from one .xlsx workbook (a sheet
each) or CSV files (one per sheet, named after it).

Same discipline as the readings import: good rows go in, every bad row is reported with its sheet,
line and reason, and a re-import updates rows (matched by code) instead of duplicating them. A
changed lease price never overwrites the price history: it adds a LeaseFee row with a new
effective date. Work is set-based: per chunk of rows one query fetches the existing rows and the
rows they refer to; inserts and updates are executemany statements.
"""
from __future__ import annotations

import enum
import io
import itertools
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import sqlalchemy as sa
import xlsxwriter

from app.extensions import db
from app.models import AuditLog, FeeItem, Lease, LeaseFee, Merchant, Meter, Unit, Zone, lease_units
from app.models.enums import (
    AuditAction, BillingCycle, FeeKind, LeaseStatus, MeterType, PricingMode, UnitStatus,
)
from app.models.readings import ImportBatch, ImportRowError, MeterReading
from app.services import audit
from app.services.exceptions import ValidationFailed
from app.services.readings import (
    ImportResult, RowError, format_quantity, fold_text, RowRejected, finish_batch, parse_date_text,
)
from app.utils.dates import now_utc, today_local
from app.utils.money import parse_yuan
from app.utils.tabular import TableError, TableReader, cell_text, display_width, normalize_header, read_table

CHUNK_SIZE = 2000


class MasterFileUnreadable(ValidationFailed):
    """The workbook or CSV files cannot be read at all (format, sheets, missing columns)."""

    code = "master_file_unreadable"


@dataclass
class SheetSpec:
    key: str
    #: Sheet name in the workbook and template (Chinese); also the CSV file name.
    title: str
    aliases: list
    columns: dict
    required: set
    example_rows: list = field(default_factory=list)

    @property
    def headers(self):
        return [aliases[0] for aliases in self.columns.values()]

    def names(self):
        return {normalize_header(n) for n in [self.key, self.title, *self.aliases]}


SHEETS = {
    "fee_items": SheetSpec(
        "fee_items", "收费项目", ["fee items", "feeitems", "收费项"],
        {
            "code": ["收费项目编码", "Code", "编码", "项目编码", "Fee item code"],
            "name": ["名称", "Name", "项目名称"],
            "kind": ["类型", "Kind", "费用类型"],
            "pricing_mode": ["计费方式", "Pricing mode", "Pricing"],
            "meter_type": ["表类型", "Meter type"],
            "default_rate": ["默认单价（元）", "Default price", "默认单价", "单价（元）", "单价"],
            "unit_label": ["计量单位", "Unit of measure", "单位"],
            "sort_order": ["排序", "Sort order"],
        },
        {"code", "name", "pricing_mode"},
        [["RENT", "摊位租金", "租金", "按面积", "", "60.00", "m²", "1"],
         ["POWER", "电费", "电费", "按用量", "电", "0.68", "kWh", "5"]],
    ),
    "units": SheetSpec(
        "units", "摊位", ["units", "铺位", "摊位表"],
        {
            "code": ["摊位编号", "Unit code", "Code", "编号", "铺位编号"],
            "zone": ["片区", "Zone", "片区编码", "Zone code"],
            "zone_name": ["片区名称", "Zone name"],
            "floor": ["楼层", "Floor"],
            "area": ["面积（m²）", "Area", "面积", "面积(平方米)", "Area (m2)", "Area m2"],
            "category": ["经营类别", "Category", "类别"],
            "note": ["备注", "Note"],
        },
        {"code", "zone", "area"},
        [["A-001", "A", "A区·蔬菜", "1", "12", "蔬菜", ""],
         ["A-002", "A", "A区·蔬菜", "1", "16.5", "蔬菜", "转角"]],
    ),
    "merchants": SheetSpec(
        "merchants", "商户", ["merchants", "租户", "商户表"],
        {
            "code": ["商户编号", "Merchant code", "Code", "编号"],
            "name": ["商户名称", "Name", "名称", "Merchant name"],
            "contact_name": ["联系人", "Contact", "Contact person"],
            "phone": ["电话", "Phone", "手机", "联系电话"],
            "phone2": ["备用电话", "Second phone", "Phone 2"],
            "business_licence_no": ["营业执照号", "Business licence no", "营业执照"],
            "credit_code": ["统一社会信用代码", "Credit code", "Unified social credit code"],
            "id_card_no": ["身份证号", "ID card no", "身份证"],
            "note": ["备注", "Note"],
        },
        {"code", "name"},
        [["M00001", "张记蔬菜", "张伟", "13800000001", "", "", "", "", ""]],
    ),
    "meters": SheetSpec(
        "meters", "表具", ["meters", "水电表", "表"],
        {
            "number": ["表号", "Meter number", "Number"],
            "meter_type": ["类型", "Meter type", "Type", "表类型"],
            "unit": ["摊位编号", "Unit code", "Unit", "摊位"],
            "zone": ["片区", "Zone", "Zone code"],
            "multiplier": ["倍率", "Multiplier"],
            "max_reading": ["最大读数", "Maximum reading", "Max reading"],
            "install_date": ["安装日期", "Install date", "Installed"],
            "start_reading": ["起始读数", "Opening reading", "Start reading", "期初读数"],
            "unit_label": ["计量单位", "Unit of measure"],
        },
        {"number", "meter_type", "install_date", "start_reading"},
        [["E-A001", "电", "A-001", "", "1", "99999", "2024-12-01", "1234.5", "kWh"],
         ["W-PUB-A", "水", "", "A", "1", "99999", "2024-12-01", "0", "吨"]],
    ),
    "leases": SheetSpec(
        "leases", "租约", ["leases", "合同", "租赁合同"],
        {
            "code": ["租约编号", "Lease code", "Code", "合同编号"],
            "merchant": ["商户编号", "Merchant code", "Merchant"],
            "units": ["摊位", "Units", "摊位编号", "Unit codes"],
            "start_date": ["开始日期", "Start date", "起租日期"],
            "end_date": ["结束日期", "End date", "到期日期"],
            "deposit": ["押金（元）", "Deposit", "押金"],
            "billing_cycle": ["缴费周期", "Billing cycle", "Cycle"],
            "note": ["备注", "Note"],
        },
        {"code", "merchant", "units", "start_date", "end_date"},
        [["L00001", "M00001", "A-001,A-002", "2026-01-01", "2027-12-31", "4000.00", "月", ""]],
    ),
    "lease_fees": SheetSpec(
        "lease_fees", "租约费用", ["lease fees", "leasefees", "租约收费项目", "收费标准"],
        {
            "lease": ["租约编号", "Lease code", "Lease"],
            "fee_item": ["收费项目编码", "Fee item code", "Fee item", "收费项目"],
            "rate": ["单价（元）", "Price", "单价", "Price (yuan)"],
            "effective_from": ["生效日期", "Effective from", "Effective date"],
        },
        {"lease", "fee_item"},
        [["L00001", "RENT", "60.00", "2026-01-01"], ["L00001", "POWER", "", ""]],
    ),
}
ORDER = ["fee_items", "units", "merchants", "meters", "leases", "lease_fees"]

_KINDS = {"租金": "rent", "摊位租金": "rent", "房租": "rent", "管理费": "management", "物业费": "management",
          "水费": "water", "电费": "electricity", "卫生费": "sanitation", "保洁费": "sanitation", "其他": "other"}
_MODES = {"固定": "fixed", "按月固定": "fixed", "定额": "fixed", "按面积": "per_area", "按平方": "per_area",
          "按用量": "metered", "计量": "metered", "按表计量": "metered", "抄表": "metered"}
_METER_TYPES = {"水": "water", "水表": "water", "电": "electricity", "电表": "electricity"}
_CYCLES = {"月": "monthly", "按月": "monthly", "月付": "monthly", "每月": "monthly",
           "季": "quarterly", "按季": "quarterly", "季付": "quarterly", "每季": "quarterly",
           "年": "yearly", "按年": "yearly", "年付": "yearly", "每年": "yearly"}
_UNIT_SPLIT = re.compile(r"[,，、;；\s]+")
_DECIMAL_RE = re.compile(r"^\d+(?:\.\d+)?$")


def _choice(text, mapping, enum_cls, what):
    folded = fold_text(text)
    value = mapping.get(folded) or folded.lower()
    try:
        return enum_cls(value)
    except ValueError:
        options = "、".join(dict.fromkeys(mapping))
        raise RowRejected(f"{what}“{text}”无法识别（可填：{options}）") from None


def _decimal(text, what, places=4, positive=False):
    folded = fold_text(text).replace(",", "")
    if not _DECIMAL_RE.match(folded):
        raise RowRejected(f"{what}不是有效数字：“{text}”")
    value = Decimal(folded)
    if value.as_tuple().exponent < -places:
        raise RowRejected(f"{what}最多保留 {places} 位小数：{text}")
    if positive and value <= 0:
        raise RowRejected(f"{what}必须大于 0：{text}")
    if value >= Decimal("1e11"):
        raise RowRejected(f"{what}过大：{text}")
    return value


def _price_fen(text, what) -> Decimal:
    """A price typed in yuan (up to 6 decimals) as Decimal fen."""
    return (_decimal(text, what, places=6) * 100).normalize()


def _date(text, what):
    try:
        return parse_date_text(text)
    except RowRejected:
        raise RowRejected(f"{what}格式错误：“{text}”（应为 YYYY-MM-DD）") from None


def _text(values, key, what, limit, required=False):
    text = fold_text(values.get(key))
    if required and not text:
        raise RowRejected(f"缺少{what}")
    if len(text) > limit:
        raise RowRejected(f"{what}过长（最多 {limit} 字）")
    return text or None


def _norm(value):
    """A value as compared and written to the audit log: enums by value, quantities as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (Decimal, int)):
        return format_quantity(Decimal(value))
    if isinstance(value, float):
        return format_quantity(Decimal(str(value)))
    if isinstance(value, date):
        return value.isoformat()
    return value or None


@dataclass
class MasterImportResult(ImportResult):
    #: Per sheet title: {inserted, updated, unchanged, rejected}.
    sheets: dict = field(default_factory=dict)


@dataclass
class SheetSource:
    """One sheet to read: a worksheet of a workbook or a CSV file."""

    key: str
    reader: TableReader
    filename: str


# --- opening the files ------------------------------------------------------------------------


def _sheet_for_name(name):
    folded = normalize_header(os.path.splitext(os.path.basename(name))[0])
    for key, spec in SHEETS.items():
        if folded in spec.names():
            return key
    return None


def _worksheet_rows(sheet):
    sheet.reset_dimensions()
    for row_no, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        yield row_no, [cell_text(v) for v in values]


def _open_workbook(source, filename, closers):
    import openpyxl

    try:
        book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:
        raise MasterFileUnreadable(f"{filename}：Excel 文件已损坏或不是 .xlsx 格式") from exc
    closers.append(book.close)
    found = []
    for sheet in book.worksheets:
        key = _sheet_for_name(sheet.title)
        if key is None:
            continue
        if any(s.key == key for s in found):
            raise MasterFileUnreadable(f"{filename}：工作簿中有两个“{SHEETS[key].title}”工作表")
        spec = SHEETS[key]
        try:
            reader = TableReader("xlsx", _worksheet_rows(sheet), [], spec.columns, spec.required)
        except TableError as exc:
            raise MasterFileUnreadable(f"{filename} 的“{sheet.title}”工作表：{exc}") from exc
        found.append(SheetSource(key, reader, filename))
    if not found:
        names = "、".join(SHEETS[k].title for k in ORDER)
        raise MasterFileUnreadable(f"{filename}：工作簿中没有可识别的工作表（应为：{names}）")
    return found


def open_sources(items) -> tuple[list[SheetSource], list]:
    """Open (file or path, filename) items as sheet readers; returns (sources, closers)."""
    sources, closers = [], []
    try:
        for source, filename in items:
            ext = os.path.splitext(filename)[1].lower()
            if isinstance(source, (str, os.PathLike)):
                fh = open(source, "rb")
                closers.append(fh.close)
            else:
                fh = source
            magic = fh.read(4)
            fh.seek(0)
            if magic == b"PK\x03\x04" or ext in (".xlsx", ".xlsm"):
                sources.extend(_open_workbook(fh, filename, closers))
                continue
            key = _sheet_for_name(filename)
            if key is None:
                names = "、".join(f"{SHEETS[k].title}.csv" for k in ORDER)
                raise MasterFileUnreadable(f"{filename}：无法从文件名判断是哪张表（CSV 文件请命名为：{names}）")
            spec = SHEETS[key]
            try:
                reader = read_table(fh, filename, columns=spec.columns, required=spec.required)
            except TableError as exc:
                raise MasterFileUnreadable(f"{filename}：{exc}") from exc
            closers.append(reader.close)
            sources.append(SheetSource(key, reader, filename))
        keys = [s.key for s in sources]
        duplicated = {k for k in keys if keys.count(k) > 1}
        if duplicated:
            raise MasterFileUnreadable("同一张表出现了两次：" + "、".join(SHEETS[k].title for k in duplicated))
    except BaseException:
        for closer in reversed(closers):
            try:
                closer()
            except Exception:
                pass
        raise
    sources.sort(key=lambda s: ORDER.index(s.key))
    return sources, closers


def expand_sources(paths) -> list[tuple[str, str]]:
    """CLI arguments (files or folders of CSV files) as (path, filename) items."""
    items = []
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.lower().endswith((".csv", ".xlsx")) and _sheet_for_name(name):
                    items.append((os.path.join(path, name), name))
        elif os.path.isfile(path):
            items.append((path, os.path.basename(path)))
        else:
            raise MasterFileUnreadable(f"{path} 不存在")
    if not items:
        raise MasterFileUnreadable("没有找到可导入的文件")
    return items


# --- the import -------------------------------------------------------------------------------


class MasterImporter:
    """Imports the sheets of one market in dependency order."""

    def __init__(self, market_id, batch_id=None, today=None):
        self.market_id = market_id
        self.batch_id = batch_id
        self.today = today or today_local()
        self.now = now_utc()
        self.actor = audit.current_actor()
        self.result = MasterImportResult()
        self.counts = defaultdict(Counter)
        self.audit_rows = []
        self.zones = {code: zid for code, zid in db.session.execute(
            sa.select(Zone.code, Zone.id).where(Zone.market_id == market_id))}
        self.zone_created = 0
        self.fee_items = {}
        #: unit id -> [(lease code, start, end)] claimed by lease rows accepted in this import.
        self.claims = defaultdict(list)
        #: merchant id -> (start date, zone id) of its latest lease in this import.
        self.merchant_zone = {}
        self.leased_units = set()

    # helpers
    def reject(self, sheet, line_no, cells, reason, errors):
        """Count a rejected row and keep it for the report."""
        self.counts[sheet]["rejected"] += 1
        errors.append(RowError(line_no, cells, reason, sheet=sheet))

    def _entry(self, table, row_id, summary, before, after, reason=None):
        user_id, username, request_id = self.actor
        return {
            "created_dt": self.now, "market_id": self.market_id, "table_name": table,
            "row_id": str(row_id), "action": AuditAction.update, "before": before, "after": after,
            "summary": summary[:300], "user_id": user_id, "username": username,
            "request_id": request_id, "reason": reason or self._reason(),
        }

    def _reason(self):
        return f"期初导入（批次 #{self.batch_id}）" if self.batch_id else "期初导入"

    def _flush_audit(self):
        if self.audit_rows:
            db.session.execute(sa.insert(AuditLog), self.audit_rows)
            self.audit_rows = []

    def sync(self, sheet, model, items, fields, extra_insert=None):
        """Insert new rows, update changed ones (audited before/after); return {code: id}."""
        # items: [(line_no, cells, code, values)]; `fields` are the compared/updated columns.
        table = model.__table__
        key_col = table.c.number if model is Meter else table.c.code
        key_name = key_col.name
        codes = [item[2] for item in items]
        existing = {row._mapping[key_name]: row for row in db.session.execute(
            sa.select(table).where(table.c.market_id == self.market_id, key_col.in_(codes)))}
        inserts, updates = [], []
        self.unchanged_codes = set()
        for _line, _cells, code, values in items:
            old = existing.get(code)
            if old is None:
                row = {"market_id": self.market_id, key_name: code, **values,
                       "created_dt": self.now, "updated_dt": self.now}
                if extra_insert:
                    row.update(extra_insert(values))
                inserts.append(row)
                self.counts[sheet]["inserted"] += 1
                continue
            before, after = {}, {}
            for name in fields:
                if _norm(old._mapping[name]) != _norm(values[name]):
                    before[name], after[name] = _norm(old._mapping[name]), _norm(values[name])
            if not after:
                self.counts[sheet]["unchanged"] += 1
                self.unchanged_codes.add(code)
                continue
            updates.append({"b_id": old.id, "b_now": self.now, **{f"v_{n}": values[n] for n in fields}})
            self.audit_rows.append(self._entry(table.name, old.id, f"{table.name} {code}", before, after))
            self.counts[sheet]["updated"] += 1
        if inserts:
            db.session.execute(sa.insert(table), inserts)
        if updates:
            db.session.execute(
                sa.update(table).where(table.c.id == sa.bindparam("b_id"))
                .values({n: sa.bindparam(f"v_{n}") for n in fields} | {"updated_dt": sa.bindparam("b_now")}),
                updates,
            )
        self._flush_audit()
        return dict(db.session.execute(
            sa.select(key_col, table.c.id).where(table.c.market_id == self.market_id, key_col.in_(codes))).all())

    def zone_id(self, code, name=None):
        """The zone with this code, created when missing."""
        if code not in self.zones:
            zone = Zone(market_id=self.market_id, code=code, name=name or f"{code}区")
            db.session.add(zone)
            db.session.flush()
            self.zones[code] = zone.id
            self.zone_created += 1
        return self.zones[code]

    def dedupe(self, sheet, rows, key, seen, errors, what):
        """Drop rows whose key appeared earlier in the sheet (rejected as duplicates)."""
        kept = []
        for item in rows:
            k = key(item)
            if k in seen:
                self.reject(sheet, item[0], item[1], f"与第 {seen[k]} 行重复（同一{what}）", errors)
                continue
            seen[k] = item[0]
            kept.append(item)
        return kept

    # sheets
    def fee_items_chunk(self, rows, seen, errors):
        """Check fee-item rows and create or update the items (tiers stay in the back office)."""
        items = []
        for line_no, values, cells in rows:
            try:
                code = _text(values, "code", "收费项目编码", 32, required=True)
                name = _text(values, "name", "名称", 50, required=True)
                mode = _choice(values.get("pricing_mode"), _MODES, PricingMode, "计费方式")
                kind = _choice(values.get("kind"), _KINDS, FeeKind, "类型") if fold_text(values.get("kind")) else FeeKind.other
                meter_type = None
                if fold_text(values.get("meter_type")):
                    meter_type = _choice(values.get("meter_type"), _METER_TYPES, MeterType, "表类型")
                if mode == PricingMode.metered and meter_type is None:
                    raise RowRejected("按用量计费的项目必须填写表类型（水 / 电）")
                rate = _price_fen(values.get("default_rate"), "默认单价") if fold_text(values.get("default_rate")) else Decimal(0)
                sort_text = fold_text(values.get("sort_order"))
                if sort_text and not sort_text.isdigit():
                    raise RowRejected(f"排序应为整数：“{sort_text}”")
                items.append((line_no, cells, code, {
                    "name": name, "kind": kind, "pricing_mode": mode, "meter_type": meter_type,
                    "default_rate_fen": rate, "unit_label": _text(values, "unit_label", "计量单位", 16),
                    "sort_order": int(sort_text or 0),
                }))
            except RowRejected as exc:
                self.reject("fee_items", line_no, cells, str(exc), errors)
        items = self.dedupe("fee_items", items, lambda i: i[2], seen, errors, "收费项目编码")
        if items:
            self.sync("fee_items", FeeItem, items, ["name", "kind", "pricing_mode", "meter_type",
                                                    "default_rate_fen", "unit_label", "sort_order"],
                      extra_insert=lambda v: {"is_active": True})

    def units_chunk(self, rows, seen, errors):
        """Check unit rows, create missing zones, and create or update the units."""
        items = []
        for line_no, values, cells in rows:
            try:
                code = _text(values, "code", "摊位编号", 32, required=True)
                zone_code = _text(values, "zone", "片区", 32, required=True)
                if not fold_text(values.get("area")):
                    raise RowRejected("缺少面积")
                area = _decimal(values.get("area"), "面积", positive=True)
                items.append((line_no, cells, code, {
                    "zone_code": zone_code, "zone_name": _text(values, "zone_name", "片区名称", 100),
                    "floor": _text(values, "floor", "楼层", 16) or "1", "area_m2": area,
                    "category": _text(values, "category", "经营类别", 50), "note": _text(values, "note", "备注", 200),
                }))
            except RowRejected as exc:
                self.reject("units", line_no, cells, str(exc), errors)
        items = self.dedupe("units", items, lambda i: i[2], seen, errors, "摊位编号")
        if not items:
            return
        existing = {row.code: row for row in db.session.execute(
            sa.select(Unit.id, Unit.code, Unit.zone_id).where(
                Unit.market_id == self.market_id, Unit.code.in_([i[2] for i in items])))}
        moved = {existing[i[2]].id for i in items if i[2] in existing
                 and self.zones.get(i[3]["zone_code"]) != existing[i[2]].zone_id}
        in_use = set()
        if moved:
            in_use = set(db.session.scalars(sa.select(lease_units.c.unit_id).where(lease_units.c.unit_id.in_(moved))))
            in_use |= set(db.session.scalars(sa.select(Meter.unit_id).where(Meter.unit_id.in_(moved))))
        kept = []
        for line_no, cells, code, values in items:
            old = existing.get(code)
            if old is not None and old.id in in_use:
                self.reject("units", line_no, cells,
                            f"摊位 {code} 已有租约或表具，不能改到片区 {values['zone_code']}（请在后台处理）", errors)
                continue
            zone_code, zone_name = values.pop("zone_code"), values.pop("zone_name")
            values["zone_id"] = self.zone_id(zone_code, zone_name)
            kept.append((line_no, cells, code, values))
        if kept:
            self.sync("units", Unit, kept, ["zone_id", "floor", "area_m2", "category", "note"],
                      extra_insert=lambda v: {"status": UnitStatus.vacant})

    def merchants_chunk(self, rows, seen, errors):
        """Check merchant rows and create or update the merchants."""
        items = []
        for line_no, values, cells in rows:
            try:
                code = _text(values, "code", "商户编号", 32, required=True)
                items.append((line_no, cells, code, {
                    "name": _text(values, "name", "商户名称", 100, required=True),
                    "contact_name": _text(values, "contact_name", "联系人", 50),
                    "phone": _text(values, "phone", "电话", 20),
                    "phone2": _text(values, "phone2", "备用电话", 20),
                    "business_licence_no": _text(values, "business_licence_no", "营业执照号", 50),
                    "credit_code": _text(values, "credit_code", "统一社会信用代码", 18),
                    "id_card_no": _text(values, "id_card_no", "身份证号", 18),
                    "note": _text(values, "note", "备注", 2000),
                }))
            except RowRejected as exc:
                self.reject("merchants", line_no, cells, str(exc), errors)
        items = self.dedupe("merchants", items, lambda i: i[2], seen, errors, "商户编号")
        if items:
            self.sync("merchants", Merchant, items, ["name", "contact_name", "phone", "phone2",
                                                     "business_licence_no", "credit_code", "id_card_no", "note"])

    def meters_chunk(self, rows, seen, errors):
        """Check meter rows against their units and zones and create or update the meters."""
        parsed = []
        for line_no, values, cells in rows:
            try:
                number = _text(values, "number", "表号", 40, required=True)
                if not fold_text(values.get("meter_type")):
                    raise RowRejected("缺少表类型（水 / 电）")
                meter_type = _choice(values.get("meter_type"), _METER_TYPES, MeterType, "表类型")
                multiplier = _decimal(values.get("multiplier"), "倍率", positive=True) \
                    if fold_text(values.get("multiplier")) else Decimal(1)
                max_reading = _decimal(values.get("max_reading"), "最大读数", positive=True) \
                    if fold_text(values.get("max_reading")) else Decimal(99999)
                if not fold_text(values.get("install_date")):
                    raise RowRejected("缺少安装日期")
                install_date = _date(values.get("install_date"), "安装日期")
                if not fold_text(values.get("start_reading")):
                    raise RowRejected("缺少起始读数")
                start = _decimal(values.get("start_reading"), "起始读数")
                if start > max_reading:
                    raise RowRejected(f"起始读数 {format_quantity(start)} 超过最大读数 {format_quantity(max_reading)}")
                label = _text(values, "unit_label", "计量单位", 8) or ("吨" if meter_type == MeterType.water else "kWh")
                parsed.append((line_no, cells, number, {
                    "unit_code": _text(values, "unit", "摊位编号", 32), "zone_code": _text(values, "zone", "片区", 32),
                    "meter_type": meter_type, "multiplier": multiplier, "max_reading": max_reading,
                    "install_date": install_date, "start_reading": start, "unit_label": label,
                }))
            except RowRejected as exc:
                self.reject("meters", line_no, cells, str(exc), errors)
        parsed = self.dedupe("meters", parsed, lambda i: i[2], seen, errors, "表号")
        if not parsed:
            return
        unit_codes = {p[3]["unit_code"] for p in parsed if p[3]["unit_code"]}
        units = {row.code: row for row in db.session.execute(
            sa.select(Unit.id, Unit.code, Unit.zone_id).where(Unit.market_id == self.market_id, Unit.code.in_(unit_codes)))}
        existing = {row.number: row for row in db.session.execute(
            sa.select(Meter.id, Meter.number, Meter.unit_id, Meter.zone_id, Meter.start_reading).where(
                Meter.market_id == self.market_id, Meter.number.in_([p[2] for p in parsed])))}
        with_readings = set()
        if existing:
            with_readings = set(db.session.scalars(sa.select(MeterReading.meter_id).where(
                MeterReading.meter_id.in_([m.id for m in existing.values()])).distinct()))
        items = []
        zone_by_id = {zid: code for code, zid in self.zones.items()}
        for line_no, cells, number, values in parsed:
            unit_code, zone_code = values.pop("unit_code"), values.pop("zone_code")
            try:
                if unit_code:
                    unit = units.get(unit_code)
                    if unit is None:
                        raise RowRejected(f"摊位编号 {unit_code} 不存在")
                    if zone_code and self.zones.get(zone_code) != unit.zone_id:
                        raise RowRejected(f"摊位 {unit_code} 在片区 {zone_by_id.get(unit.zone_id)}，与所填片区 {zone_code} 不符")
                    values.update(unit_id=unit.id, zone_id=unit.zone_id, is_public=False)
                else:
                    if not zone_code:
                        raise RowRejected("公用表（不填摊位编号）必须填写片区")
                    if zone_code not in self.zones:
                        raise RowRejected(f"片区 {zone_code} 不存在")
                    values.update(unit_id=None, zone_id=self.zones[zone_code], is_public=True)
                old = existing.get(number)
                if old is not None and old.id in with_readings:
                    if Decimal(old.start_reading) != values["start_reading"]:
                        raise RowRejected(f"表 {number} 已有抄表读数，不能再修改起始读数（{format_quantity(old.start_reading)}）")
                    if old.unit_id != values["unit_id"] or old.zone_id != values["zone_id"]:
                        raise RowRejected(f"表 {number} 已有抄表读数，不能再改到其他摊位或片区")
            except RowRejected as exc:
                self.reject("meters", line_no, cells, str(exc), errors)
                continue
            items.append((line_no, cells, number, values))
        if items:
            self.sync("meters", Meter, items, ["meter_type", "unit_id", "zone_id", "is_public", "multiplier",
                                               "max_reading", "install_date", "start_reading", "unit_label"],
                      extra_insert=lambda v: {"is_active": True})

    def leases_chunk(self, rows, seen, errors):
        """Check lease rows (merchant, units in one zone, no overlap) and store leases and unit links."""
        parsed = []
        for line_no, values, cells in rows:
            try:
                code = _text(values, "code", "租约编号", 32, required=True)
                merchant = _text(values, "merchant", "商户编号", 32, required=True)
                unit_codes = [c for c in _UNIT_SPLIT.split(fold_text(values.get("units"))) if c]
                if not unit_codes:
                    raise RowRejected("缺少摊位编号")
                if not fold_text(values.get("start_date")):
                    raise RowRejected("缺少开始日期")
                if not fold_text(values.get("end_date")):
                    raise RowRejected("缺少结束日期")
                start = _date(values.get("start_date"), "开始日期")
                end = _date(values.get("end_date"), "结束日期")
                if end < start:
                    raise RowRejected(f"结束日期 {end.isoformat()} 早于开始日期 {start.isoformat()}")
                deposit = 0
                if fold_text(values.get("deposit")):
                    try:
                        deposit = parse_yuan(fold_text(values.get("deposit")))
                    except ValueError as exc:
                        raise RowRejected(f"押金：{exc}") from None
                cycle = _choice(values.get("billing_cycle"), _CYCLES, BillingCycle, "缴费周期") \
                    if fold_text(values.get("billing_cycle")) else BillingCycle.monthly
                parsed.append((line_no, cells, code, {
                    "merchant_code": merchant, "unit_codes": list(dict.fromkeys(unit_codes)),
                    "start_date": start, "end_date": end, "deposit_fen": deposit, "billing_cycle": cycle,
                    "note": _text(values, "note", "备注", 2000),
                }))
            except RowRejected as exc:
                self.reject("leases", line_no, cells, str(exc), errors)
        parsed = self.dedupe("leases", parsed, lambda i: i[2], seen, errors, "租约编号")
        if not parsed:
            return
        merchants = dict(db.session.execute(sa.select(Merchant.code, Merchant.id).where(
            Merchant.market_id == self.market_id, Merchant.code.in_({p[3]["merchant_code"] for p in parsed}))).all())
        all_codes = {c for p in parsed for c in p[3]["unit_codes"]}
        units = {row.code: row for row in db.session.execute(sa.select(Unit.id, Unit.code, Unit.zone_id).where(
            Unit.market_id == self.market_id, Unit.code.in_(all_codes)))}
        unit_ids = [u.id for u in units.values()]
        taken = defaultdict(list)  # unit id -> [(lease code, start, end)] of stored, not-ended leases
        for row in db.session.execute(
            sa.select(lease_units.c.unit_id, Lease.code, Lease.start_date, Lease.end_date)
            .join(Lease, Lease.id == lease_units.c.lease_id)
            .where(lease_units.c.unit_id.in_(unit_ids), Lease.status != LeaseStatus.ended)
        ):
            taken[row.unit_id].append((row.code, row.start_date, row.end_date))
        existing = {row.code: row for row in db.session.execute(sa.select(Lease.id, Lease.code).where(
            Lease.market_id == self.market_id, Lease.code.in_([p[2] for p in parsed])))}
        old_links = defaultdict(set)
        if existing:
            for lease_id, unit_id in db.session.execute(sa.select(lease_units.c.lease_id, lease_units.c.unit_id).where(
                    lease_units.c.lease_id.in_([r.id for r in existing.values()]))):
                old_links[lease_id].add(unit_id)
        items, links = [], {}
        for line_no, cells, code, values in parsed:
            try:
                merchant_id = merchants.get(values["merchant_code"])
                if merchant_id is None:
                    raise RowRejected(f"商户编号 {values['merchant_code']} 不存在")
                missing = [c for c in values["unit_codes"] if c not in units]
                if missing:
                    raise RowRejected("摊位编号不存在：" + "、".join(missing))
                chosen = [units[c] for c in values["unit_codes"]]
                zones = {u.zone_id for u in chosen}
                if len(zones) > 1:
                    raise RowRejected("同一租约的摊位必须在同一片区：" + "、".join(values["unit_codes"]))
                for unit in chosen:
                    for other, o_start, o_end in taken[unit.id] + self.claims[unit.id]:
                        if other != code and o_start <= values["end_date"] and values["start_date"] <= o_end:
                            raise RowRejected(
                                f"摊位 {unit.code} 已出租给租约 {other}（{o_start.isoformat()} 至 {o_end.isoformat()}），日期重叠"
                            )
            except RowRejected as exc:
                self.reject("leases", line_no, cells, str(exc), errors)
                continue
            for unit in chosen:
                self.claims[unit.id].append((code, values["start_date"], values["end_date"]))
            zone_id = zones.pop()
            links[code] = [u.id for u in chosen]
            latest = self.merchant_zone.get(merchant_id)
            if latest is None or latest[0] <= values["start_date"]:
                self.merchant_zone[merchant_id] = (values["start_date"], zone_id)
            if values["end_date"] >= self.today:
                self.leased_units.update(links[code])
            items.append((line_no, cells, code, {
                "merchant_id": merchant_id, "zone_id": zone_id, "start_date": values["start_date"],
                "end_date": values["end_date"], "deposit_fen": values["deposit_fen"],
                "billing_cycle": values["billing_cycle"], "note": values["note"],
            }))
        if not items:
            return
        # The status is set once, from the dates; later changes (ended early) are the back office's.
        ids = self.sync(
            "leases", Lease, items,
            ["merchant_id", "zone_id", "start_date", "end_date", "deposit_fen", "billing_cycle", "note"],
            extra_insert=lambda v: {"status": LeaseStatus.ended if v["end_date"] < self.today else LeaseStatus.active},
        )
        add, remove = [], []
        unit_code_by_id = {u.id: u.code for u in units.values()}
        gone = {uid for linked in old_links.values() for uid in linked} - set(unit_code_by_id)
        if gone:
            unit_code_by_id.update(db.session.execute(sa.select(Unit.id, Unit.code).where(Unit.id.in_(gone))).all())
        for _l, _c, code, _v in items:
            lease_id = ids[code]
            want, have = set(links[code]), old_links.get(lease_id, set())
            add.extend({"lease_id": lease_id, "unit_id": uid} for uid in sorted(want - have))
            remove.extend({"b_lease": lease_id, "b_unit": uid} for uid in sorted(have - want))
            if code in existing and want != have:
                self.audit_rows.append(self._entry(
                    "leases", lease_id, f"leases {code}",
                    {"units": sorted(unit_code_by_id.get(u, str(u)) for u in have)},
                    {"units": sorted(unit_code_by_id[u] for u in want)},
                ))
                if code in self.unchanged_codes:
                    self.counts["leases"]["unchanged"] -= 1
                    self.counts["leases"]["updated"] += 1
        if remove:
            db.session.execute(sa.delete(lease_units).where(
                lease_units.c.lease_id == sa.bindparam("b_lease"), lease_units.c.unit_id == sa.bindparam("b_unit")),
                remove)
        if add:
            db.session.execute(sa.insert(lease_units), add)
        self._flush_audit()

    def lease_fees_chunk(self, rows, seen, errors):
        """Add lease prices; a changed price becomes a new row, the history is never rewritten."""
        if not self.fee_items:
            self.fee_items = dict(db.session.execute(
                sa.select(FeeItem.code, FeeItem.id).where(FeeItem.market_id == self.market_id)).all())
        parsed = []
        for line_no, values, cells in rows:
            try:
                lease = _text(values, "lease", "租约编号", 32, required=True)
                item = _text(values, "fee_item", "收费项目编码", 32, required=True)
                rate = _price_fen(values.get("rate"), "单价") if fold_text(values.get("rate")) else None
                effective = _date(values.get("effective_from"), "生效日期") if fold_text(values.get("effective_from")) else None
                parsed.append((line_no, cells, (lease, item, effective), {"rate_fen": rate}))
            except RowRejected as exc:
                self.reject("lease_fees", line_no, cells, str(exc), errors)
        parsed = self.dedupe("lease_fees", parsed, lambda i: i[2], seen, errors, "租约、收费项目和生效日期")
        if not parsed:
            return
        leases = {row.code: row for row in db.session.execute(sa.select(Lease.id, Lease.code, Lease.start_date).where(
            Lease.market_id == self.market_id, Lease.code.in_({p[2][0] for p in parsed})))}
        history = defaultdict(list)  # (lease id, fee item id) -> [(effective_from, rate)] oldest first
        if leases:
            for row in db.session.execute(
                sa.select(LeaseFee.lease_id, LeaseFee.fee_item_id, LeaseFee.effective_from, LeaseFee.rate_fen)
                .where(LeaseFee.lease_id.in_([r.id for r in leases.values()])).order_by(LeaseFee.effective_from)
            ):
                history[(row.lease_id, row.fee_item_id)].append((row.effective_from, row.rate_fen))
        month_start = self.today.replace(day=1)
        inserts = []
        for line_no, cells, (lease_code, item_code, effective), values in parsed:
            try:
                lease = leases.get(lease_code)
                if lease is None:
                    raise RowRejected(f"租约编号 {lease_code} 不存在")
                item_id = self.fee_items.get(item_code)
                if item_id is None:
                    raise RowRejected(f"收费项目编码 {item_code} 不存在（请先在后台或“收费项目”表中建立）")
                rate = values["rate_fen"]
                rows_ = history[(lease.id, item_id)]
                same_day = {d: r for d, r in rows_}
                if effective is not None:
                    if effective in same_day:
                        if _norm(same_day[effective]) == _norm(rate):
                            self.counts["lease_fees"]["unchanged"] += 1
                            continue
                        raise RowRejected(
                            f"{effective.isoformat()} 起已有不同价格（{_yuan(same_day[effective])}）；"
                            "价格历史不能改写，请使用新的生效日期"
                        )
                    in_force = [r for d, r in rows_ if d <= effective]
                    if in_force and _norm(in_force[-1]) == _norm(rate):
                        self.counts["lease_fees"]["unchanged"] += 1
                        continue
                elif not rows_:
                    effective = lease.start_date
                else:
                    if _norm(rows_[-1][1]) == _norm(rate):
                        self.counts["lease_fees"]["unchanged"] += 1
                        continue
                    if rows_[-1][0] >= month_start:
                        raise RowRejected(
                            f"价格已于 {rows_[-1][0].isoformat()} 调整过；再次调价请填写生效日期"
                        )
                    effective = month_start
            except RowRejected as exc:
                self.reject("lease_fees", line_no, cells, str(exc), errors)
                continue
            rows_.append((effective, rate))
            rows_.sort(key=lambda x: x[0])
            inserts.append({"market_id": self.market_id, "lease_id": lease.id, "fee_item_id": item_id,
                            "effective_from": effective, "rate_fen": rate, "note": self._reason()[:200],
                            "created_dt": self.now, "updated_dt": self.now})
            self.counts["lease_fees"]["inserted"] += 1
        if inserts:
            db.session.execute(sa.insert(LeaseFee.__table__), inserts)

    def finish(self):
        """Derived facts: merchants' zone from their leases, units of current leases marked leased."""
        if self.merchant_zone:
            ids = list(self.merchant_zone)
            current = {}
            for start in range(0, len(ids), 5000):
                current.update(db.session.execute(sa.select(Merchant.id, Merchant.zone_id).where(
                    Merchant.id.in_(ids[start:start + 5000]))).all())
            changes = [{"b_id": mid, "b_zone": zone} for mid, (_d, zone) in self.merchant_zone.items()
                       if current.get(mid) != zone]
            if changes:
                db.session.execute(sa.update(Merchant.__table__).where(Merchant.__table__.c.id == sa.bindparam("b_id"))
                                   .values(zone_id=sa.bindparam("b_zone")), changes)
                for change in changes:
                    self.audit_rows.append(self._entry(
                        "merchants", change["b_id"], f"merchants {change['b_id']}",
                        {"zone_id": current.get(change["b_id"])}, {"zone_id": change["b_zone"]},
                        reason=f"{self._reason()}：按租约摊位设置片区",
                    ))
        if self.leased_units:
            ids = sorted(self.leased_units)
            for start in range(0, len(ids), 5000):
                db.session.execute(sa.update(Unit.__table__).where(
                    Unit.__table__.c.id.in_(ids[start:start + 5000]),
                    Unit.__table__.c.status == UnitStatus.vacant.value,
                ).values(status=UnitStatus.leased.value, updated_dt=self.now))
        self._flush_audit()


def _yuan(rate_fen) -> str:
    if rate_fen is None:
        return "项目默认价"
    return f"{format_quantity(Decimal(rate_fen) / 100)} 元"


def import_master_data(batch: ImportBatch, source, filename=None, progress=None,
                       chunk_size=CHUNK_SIZE) -> MasterImportResult:
    """Import an onboarding workbook or CSV files into the batch's market; report every bad row."""
    # source: a file object or path (one .xlsx workbook, or one CSV named after its sheet), or a
    # list of (file or path, filename) items (several CSV files).
    items = source if isinstance(source, list) else [(source, filename or batch.filename)]
    sources, closers = open_sources(items)
    importer = MasterImporter(batch.market_id, batch_id=batch.id)
    result = importer.result
    handlers = {
        "fee_items": importer.fee_items_chunk, "units": importer.units_chunk,
        "merchants": importer.merchants_chunk, "meters": importer.meters_chunk,
        "leases": importer.leases_chunk, "lease_fees": importer.lease_fees_chunk,
    }
    headers = {}
    try:
        if progress:
            progress(0, batch.total_rows or 0, result)
        for src in sources:
            headers[src.key] = list(src.reader.headers)
            seen = {}
            rows = ((line_no, row, row.cells) for line_no, row in src.reader)
            while True:
                try:
                    chunk = list(itertools.islice(rows, chunk_size))
                except TableError as exc:
                    raise MasterFileUnreadable(f"{src.filename}：{exc}") from exc
                if not chunk:
                    break
                errors = []
                handlers[src.key](chunk, seen, errors)
                result.processed += len(chunk)
                for error in sorted(errors, key=lambda e: e.line_no):
                    result.add_error(error)
                if errors:
                    db.session.execute(sa.insert(ImportRowError), [
                        {"batch_id": batch.id, "sheet": e.sheet, "line_no": e.line_no,
                         "cells": list(e.cells), "reason": e.reason[:500]} for e in errors])
                if progress:
                    progress(result.processed, max(batch.total_rows or 0, result.processed), result)
        importer.finish()
    finally:
        for closer in reversed(closers):
            try:
                closer()
            except Exception:
                pass
    for key in ORDER:
        if key in headers:
            counts = importer.counts[key]
            result.sheets[SHEETS[key].title] = {n: counts[n] for n in ("inserted", "updated", "unchanged", "rejected")}
            result.inserted += counts["inserted"]
            result.updated += counts["updated"]
            result.unchanged += counts["unchanged"]
    if result.inserted or result.updated or importer.zone_created:
        audit.record_bulk(
            db.session, batch.market_id, "markets",
            f"期初导入（批次 #{batch.id}，{batch.filename}）：" + "；".join(
                f"{name} 新增 {c['inserted']} 更新 {c['updated']} 拒绝 {c['rejected']}" for name, c in result.sheets.items()
            ) + (f"；新建片区 {importer.zone_created}" if importer.zone_created else ""),
            after={"sheets": result.sheets, "zones_created": importer.zone_created},
        )
    batch.headers = headers
    batch.summary = result.sheets
    finish_batch(batch, result)
    return result


def estimate_master_rows(content: bytes, filename: str) -> int:
    """Roughly how many data rows an onboarding file holds (for the progress bar)."""
    if content[:4] == b"PK\x03\x04":
        try:
            import openpyxl

            book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
            try:
                return sum(max((ws.max_row or 1) - 1, 0) for ws in book.worksheets if _sheet_for_name(ws.title))
            finally:
                book.close()
        except Exception:
            return 0
    return max(content.count(b"\n") - 1, 0)


# --- templates and error files ----------------------------------------------------------------

INSTRUCTIONS = [
    "期初导入模板：每张工作表一类数据，表头必须保留（中文或英文表头均可），带 * 的列必填。",
    "导入顺序：收费项目 → 摊位 → 商户 → 表具 → 租约 → 租约费用；不需要的工作表可以删除。",
    "再次导入同一文件只会更新有变化的行，不会重复新增；编号（摊位编号、商户编号、表号、租约编号、收费项目编码）是匹配依据。",
    "片区按编码匹配，不存在时自动新建（名称取“片区名称”列）。",
    "租约的摊位用逗号分隔（如 A-001,A-002），同一租约的摊位必须在同一片区；商户和租约的片区按摊位自动设置。",
    "租约费用：单价单位为元，留空表示使用收费项目的默认单价；价格变化时新增一条生效日期不同的记录，历史价格不会被覆盖。",
    "收费项目必须已在后台建立，或放在“收费项目”工作表中一起导入（阶梯价请在后台设置）。",
    "表具的“起始读数”即期初读数；已有抄表读数的表不能再修改起始读数。",
    "详细规则见 docs/import-formats.md。",
]


def _text_sheet(workbook, name, headers, rows, required=(), reason=False):
    sheet = workbook.add_worksheet(name)
    bold = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "border": 1})
    text = workbook.add_format({"num_format": "@"})
    red = workbook.add_format({"font_color": "#C00000"})
    red_head = workbook.add_format({"bold": True, "bg_color": "#FDE9E9", "border": 1, "font_color": "#C00000"})
    widths = [display_width(h) + 2 for h in headers]
    for col, header in enumerate(headers):
        last = reason and col == len(headers) - 1
        sheet.write_string(0, col, header, red_head if last else bold)
    for r, cells in enumerate(rows, start=1):
        for col, value in enumerate(cells):
            value = "" if value is None else str(value)
            if value:
                sheet.write_string(r, col, value, red if reason and col == len(headers) - 1 else None)
                if col < len(widths):
                    widths[col] = max(widths[col], display_width(value))
    for col, width in enumerate(widths):
        sheet.set_column(col, col, min(max(width + 2, 8), 60), text)
    sheet.freeze_panes(1, 0)
    return sheet


def write_master_template(target) -> None:
    """Write the onboarding workbook template: a sheet per kind of data, with example rows."""
    workbook = xlsxwriter.Workbook(target, {"in_memory": True})
    for key in ORDER:
        spec = SHEETS[key]
        headers = [h + ("*" if k in spec.required else "") for k, h in zip(spec.columns, spec.headers)]
        _text_sheet(workbook, spec.title, headers, spec.example_rows)
    notes = workbook.add_worksheet("说明")
    notes.set_column(0, 0, 120)
    for row, line in enumerate(INSTRUCTIONS):
        notes.write_string(row, 0, line)
    workbook.close()


def write_master_error_file(batch: ImportBatch, target) -> int:
    """Write the rejected rows of a master import: a sheet per input sheet, with a reason column."""
    workbook = xlsxwriter.Workbook(target, {"in_memory": True})
    total = 0
    headers = batch.headers or {}
    for key in ORDER:
        rows = db.session.execute(
            sa.select(ImportRowError.cells, ImportRowError.reason)
            .where(ImportRowError.batch_id == batch.id, ImportRowError.sheet == key)
            .order_by(ImportRowError.line_no)
        ).all()
        if not rows:
            continue
        sheet_headers = list(headers.get(key) or SHEETS[key].headers)
        width = len(sheet_headers)
        lines = [[*(list(cells)[:width] + [""] * (width - len(cells))), reason] for cells, reason in rows]
        _text_sheet(workbook, SHEETS[key].title, sheet_headers + ["错误原因"], lines, reason=True)
        total += len(rows)
    if total == 0:
        workbook.add_worksheet("无错误")
    workbook.close()
    return total
