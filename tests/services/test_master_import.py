"""Onboarding import: a workbook with every sheet, bad rows reported, re-import updates rather
than duplicates, and a changed price adds a LeaseFee history row."""
import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, FeeItem, Lease, LeaseFee, Merchant, Meter, Unit, Zone
from app.models.enums import AuditAction, BillingCycle, LeaseStatus, MeterType, PricingMode, UnitStatus
from app.models.readings import ImportKind
from app.services.master_import import (
    MasterFileUnreadable, import_master_data, write_master_error_file, write_master_template,
)
from app.services.readings import create_import_batch
from app.utils.dates import today_local
from tests.fixtures.imports import audit_count, count, xlsx_bytes

FEE_HEADERS = ["收费项目编码", "名称", "类型", "计费方式", "表类型", "默认单价（元）", "计量单位", "排序"]
UNIT_HEADERS = ["摊位编号", "片区", "片区名称", "楼层", "面积（m²）", "经营类别", "备注"]
MERCHANT_HEADERS = ["商户编号", "商户名称", "联系人", "电话"]
METER_HEADERS = ["表号", "类型", "摊位编号", "片区", "倍率", "最大读数", "安装日期", "起始读数"]
LEASE_HEADERS = ["租约编号", "商户编号", "摊位", "开始日期", "结束日期", "押金（元）", "缴费周期", "备注"]
FEE_ROW_HEADERS = ["租约编号", "收费项目编码", "单价（元）", "生效日期"]


def sheets(**changes):
    """The onboarding sheets for zone C of the small market; keyword arguments replace sheets."""
    data = {
        "收费项目": (FEE_HEADERS, [["WATER", "水费", "水费", "按用量", "水", "4.20", "吨", "4"]]),
        "摊位": (UNIT_HEADERS, [
            ["C-001", "C", "C区·干货", "1", "12", "干货", ""],
            ["C-002", "C", "C区·干货", "1", "16.5", "干货", ""],
            ["C-003", "C", "C区·干货", "2", "9", "粮油", "楼梯口"],
            ["C-004", "C", "", "1", "", "干货", ""],                      # line 5: no area
        ]),
        "商户": (MERCHANT_HEADERS, [["M90001", "周记干货", "周强", "13900000001"],
                                   ["M90002", "吴家粮油", "吴敏", "13900000002"]]),
        "表具": (METER_HEADERS, [
            ["EC001", "电", "C-001", "", "1", "999999", "2025-12-01", "1234.5"],
            ["WC001", "水", "C-001", "", "", "", "2025-12-01", "10"],
            ["WPUB-C", "水", "", "C", "", "", "2025-12-01", "0"],
            ["EZ001", "电", "Z-9", "", "", "", "2025-12-01", "0"],           # line 5: unknown unit
        ]),
        "租约": (LEASE_HEADERS, [
            ["L90001", "M90001", "C-001,C-002", "2026-01-01", "2027-12-31", "5,000.00", "月", ""],
            ["L90002", "M90002", "C-003、A-001", "2026-01-01", "2027-12-31", "", "季", ""],  # line 3: two zones
            ["L90003", "M90002", "C-003", "2026-02-01", "2026-12-31", "800", "季付", "续签"],
            ["L90004", "M99999", "C-003", "2027-01-01", "2027-12-31", "", "", ""],          # line 5: no merchant
        ]),
        "租约费用": (FEE_ROW_HEADERS, [
            ["L90001", "RENT", "55.5", ""],
            ["L90001", "POWER", "", ""],
            ["L90001", "NOPE", "1", ""],                                                      # line 4
            ["L90003", "WATER", "4.5", "2026-02-01"],
        ]),
    }
    data.update(changes)
    return data


def workbook(**changes) -> bytes:
    return xlsx_bytes(None, sheets=sheets(**changes))


def run(market_id, content, filename="onboarding.xlsx"):
    batch = create_import_batch(market_id, ImportKind.master, filename)
    result = import_master_data(batch, io.BytesIO(content), filename)
    db.session.commit()
    db.session.expire_all()
    return batch, result


def errors_by_sheet(result):
    return {(e.sheet, e.line_no): e.reason for e in result.errors}


def _by_code(model, code, attr="code"):
    return db.session.scalar(sa.select(model).where(getattr(model, attr) == code))


def test_workbook_with_all_sheets(market):
    batch, result = run(market.market.id, workbook())
    assert result.sheets == {
        "收费项目": {"inserted": 1, "updated": 0, "unchanged": 0, "rejected": 0},
        "摊位": {"inserted": 3, "updated": 0, "unchanged": 0, "rejected": 1},
        "商户": {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 0},
        "表具": {"inserted": 3, "updated": 0, "unchanged": 0, "rejected": 1},
        "租约": {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 2},
        "租约费用": {"inserted": 3, "updated": 0, "unchanged": 0, "rejected": 1},
    }
    assert errors_by_sheet(result) == {
        ("units", 5): "缺少面积",
        ("meters", 5): "摊位编号 Z-9 不存在",
        ("leases", 3): "同一租约的摊位必须在同一片区：C-003、A-001",
        ("leases", 5): "商户编号 M99999 不存在",
        ("lease_fees", 4): "收费项目编码 NOPE 不存在（请先在后台或“收费项目”表中建立）",
    }
    zone_c = _by_code(Zone, "C")
    assert zone_c.name == "C区·干货" and zone_c.market_id == market.market.id
    unit = _by_code(Unit, "C-002")
    assert unit.zone_id == zone_c.id and unit.area_m2 == Decimal("16.5") and unit.status == UnitStatus.leased
    lease = _by_code(Lease, "L90001")
    assert [u.code for u in lease.units] == ["C-001", "C-002"] and lease.zone_id == zone_c.id
    assert lease.deposit_fen == 500000 and lease.billing_cycle == BillingCycle.monthly
    assert lease.status == LeaseStatus.active and lease.merchant.code == "M90001"
    assert _by_code(Lease, "L90003").billing_cycle == BillingCycle.quarterly
    assert _by_code(Merchant, "M90001").zone_id == zone_c.id
    assert _by_code(Merchant, "M90002").zone_id == zone_c.id
    fees = {(f.fee_item.code, f.effective_from): f.rate_fen for f in lease.fees}
    assert fees == {("RENT", date(2026, 1, 1)): Decimal("5550"), ("POWER", date(2026, 1, 1)): None}
    meter = _by_code(Meter, "EC001", "number")
    assert meter.start_reading == Decimal("1234.5") and meter.max_reading == Decimal("999999")
    assert meter.zone_id == zone_c.id and meter.unit.code == "C-001" and meter.meter_type == MeterType.electricity
    public = _by_code(Meter, "WPUB-C", "number")
    assert public.is_public is True and public.unit_id is None and public.unit_label == "吨"
    water = _by_code(FeeItem, "WATER")
    assert water.pricing_mode == PricingMode.metered and water.default_rate_fen == Decimal("420")
    assert batch.rejected_count == 5 and batch.inserted_count == 14
    summary = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == AuditAction.bulk))
    assert "期初导入" in summary.summary


def test_reimport_updates_rather_than_duplicates(market):
    run(market.market.id, workbook())
    totals = {m: count(m) for m in (Unit, Merchant, Meter, Lease, LeaseFee, FeeItem, Zone)}
    audits = audit_count()
    _batch, result = run(market.market.id, workbook())
    assert result.inserted == 0 and result.updated == 0 and result.rejected == 5
    assert {m: count(m) for m in totals} == totals
    assert audit_count() == audits  # nothing changed, nothing logged

    changed = sheets()
    changed["摊位"][1][1][4] = "18"                          # C-002 area 16.5 -> 18
    changed["商户"][1][0][3] = "13911111111"                 # M90001 phone
    changed["租约"][1][0][2] = "C-001"                       # L90001 gives up C-002
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert result.sheets["摊位"]["updated"] == 1 and result.sheets["商户"]["updated"] == 1
    assert result.sheets["租约"]["updated"] == 1
    assert {m: count(m) for m in totals} == totals
    unit = _by_code(Unit, "C-002")
    assert unit.area_m2 == Decimal("18")
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "units",
                                                        AuditLog.row_id == str(unit.id),
                                                        AuditLog.action == AuditAction.update))
    assert entry.before == {"area_m2": "16.5"} and entry.after == {"area_m2": "18"}
    assert [u.code for u in _by_code(Lease, "L90001").units] == ["C-001"]
    links = db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "leases",
                                                        AuditLog.action == AuditAction.update))
    assert links.before == {"units": ["C-001", "C-002"]} and links.after == {"units": ["C-001"]}


def test_price_change_adds_a_lease_fee_row(market):
    run(market.market.id, workbook())
    changed = sheets()
    changed["租约费用"][1][0][2] = "58"
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert result.sheets["租约费用"]["inserted"] == 1
    month_start = today_local().replace(day=1)
    rows = db.session.execute(
        sa.select(LeaseFee.effective_from, LeaseFee.rate_fen).join(FeeItem).join(Lease)
        .where(Lease.code == "L90001", FeeItem.code == "RENT").order_by(LeaseFee.effective_from)
    ).all()
    assert [(d, r) for d, r in rows] == [(date(2026, 1, 1), Decimal("5550")), (month_start, Decimal("5800"))]
    # The same file again: nothing new.
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert result.sheets["租约费用"]["inserted"] == 0
    # Another change this month needs an explicit date; with one it is added, history intact.
    changed["租约费用"][1][0][2] = "60"
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert "再次调价请填写生效日期" in errors_by_sheet(result)[("lease_fees", 2)]
    changed["租约费用"][1][0][3] = "2027-01-01"
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert result.sheets["租约费用"]["inserted"] == 1
    # A different price for an existing date is refused: history is never rewritten.
    changed["租约费用"][1][0][2:4] = ["61", "2026-01-01"]
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert "价格历史不能改写" in errors_by_sheet(result)[("lease_fees", 2)]
    assert count(LeaseFee) == 4 * 3 + 3 + 2  # small market's fees + imported + two changes


def test_overlapping_lease_for_a_leased_unit_is_rejected(market):
    other = (LEASE_HEADERS, [["L95555", "M90001", market.units_a[0].code, "2026-06-01", "2026-12-31", "", "", ""]])
    _batch, result = run(market.market.id, workbook(**{"租约": other}))
    reason = errors_by_sheet(result)[("leases", 2)]
    assert reason.startswith(f"摊位 A-001 已出租给租约 {market.leases[0].code}（2026-01-01 至 2027-12-31），日期重叠")


def test_duplicate_codes_in_a_sheet(market):
    dup = (MERCHANT_HEADERS, [["M90001", "周记干货", "", ""], ["M90001", "周记干货二", "", ""]])
    _batch, result = run(market.market.id, workbook(**{"商户": dup}))
    assert errors_by_sheet(result)[("merchants", 3)] == "与第 2 行重复（同一商户编号）"
    assert _by_code(Merchant, "M90001").name == "周记干货"


def test_opening_reading_is_fixed_once_readings_exist(market):
    from app.services.readings import record_meter_reading

    run(market.market.id, workbook())
    record_meter_reading(market.market.id, {"meter_number": "EC001", "period": "2026-01", "reading": "1300"})
    db.session.commit()
    changed = sheets()
    changed["表具"][1][0][7] = "1200"
    _batch, result = run(market.market.id, xlsx_bytes(None, sheets=changed))
    assert errors_by_sheet(result)[("meters", 2)] == "表 EC001 已有抄表读数，不能再修改起始读数（1234.5）"
    assert _by_code(Meter, "EC001", "number").start_reading == Decimal("1234.5")


def test_error_file_has_a_sheet_per_input_sheet(market):
    batch, _result = run(market.market.id, workbook())
    buf = io.BytesIO()
    assert write_master_error_file(db.session.get(type(batch), batch.id), buf) == 5
    book = openpyxl.load_workbook(io.BytesIO(buf.getvalue()))
    assert book.sheetnames == ["摊位", "表具", "租约", "租约费用"]
    rows = list(book["租约"].iter_rows(values_only=True))
    assert rows[0] == tuple(LEASE_HEADERS + ["错误原因"])
    assert rows[1][0] == "L90002" and rows[1][-1] == "同一租约的摊位必须在同一片区：C-003、A-001"
    # The error workbook is itself importable (rows stay rejected until fixed).
    _b, again = run(market.market.id, buf.getvalue())
    assert again.rejected == 5


def test_template_imports_into_a_new_market(db):
    from tests.factories import MarketFactory

    new = MarketFactory(code="NEW")
    db.session.commit()
    buf = io.BytesIO()
    write_master_template(buf)
    book = openpyxl.load_workbook(io.BytesIO(buf.getvalue()))
    assert book.sheetnames == ["收费项目", "摊位", "商户", "表具", "租约", "租约费用", "说明"]
    _batch, result = run(new.id, buf.getvalue())
    assert result.rejected == 0, result.errors
    assert result.inserted == 10
    assert db.session.scalar(sa.select(Zone.name).where(Zone.market_id == new.id)) == "A区·蔬菜"


@pytest.mark.parametrize("content, filename, message", [
    (xlsx_bytes(None, sheets={"Sheet1": (["a"], [["1"]])}), "x.xlsx", "工作簿中没有可识别的工作表"),
    (xlsx_bytes(None, sheets={"摊位": (["摊位编号"], [["A-1"]])}), "x.xlsx", "缺少必需的列：片区、面积（m²）"),
    (b"code,name\n1,2\n", "whatever.csv", "无法从文件名判断是哪张表"),
    (b"garbage", "x.xlsx", "不是 .xlsx 格式"),
])
def test_unreadable_workbooks(market, content, filename, message):
    batch = create_import_batch(market.market.id, ImportKind.master, filename)
    with pytest.raises(MasterFileUnreadable) as exc:
        import_master_data(batch, io.BytesIO(content), filename)
    assert message in exc.value.message


# --- the CLI ------------------------------------------------------------------------------------


def _csv(path, headers, rows, encoding="gbk"):
    lines = [",".join(headers)] + [",".join(f'"{c}"' if "," in c else c for c in row) for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))


def test_cli_imports_csv_files_and_exits_0_3_2(app, market, tmp_path):
    runner = app.test_cli_runner()
    folder = tmp_path / "onboarding"
    folder.mkdir()
    # "m²" has no GBK code: GBK files use another accepted header such as 面积 or 面积(平方米).
    gbk_unit_headers = [h if h != "面积（m²）" else "面积(平方米)" for h in UNIT_HEADERS]
    _csv(folder / "摊位.csv", gbk_unit_headers, [["C-001", "C", "C区", "1", "12", "", ""]])
    _csv(folder / "merchants.csv", MERCHANT_HEADERS, [["M90001", "周记干货", "", ""]], encoding="utf-8-sig")
    _csv(folder / "租约.csv", LEASE_HEADERS, [["L90001", "M90001", "C-001", "2026-01-01", "2027-12-31", "", "", ""]])
    result = runner.invoke(args=["market", "import-master", str(folder), "--market", "JJ"])
    assert result.exit_code == 0, result.output
    assert "inserted=3" in result.output and "摊位: inserted=1" in result.output
    db.session.expire_all()
    assert _by_code(Lease, "L90001").zone.code == "C"

    _csv(folder / "租约.csv", LEASE_HEADERS, [["L90002", "M00000", "C-001", "2026-01-01", "2027-12-31", "", "", ""]])
    result = runner.invoke(args=["market", "import-master", str(folder / "租约.csv"), "--market", "JJ"])
    assert result.exit_code == 3 and "租约 第 2 行：商户编号 M00000 不存在" in result.output
    errors = folder / "租约.errors.xlsx"
    assert errors.exists()
    assert openpyxl.load_workbook(errors)["租约"]["I2"].value == "商户编号 M00000 不存在"

    (folder / "notes.csv").write_text("x\n1\n")
    result = runner.invoke(args=["market", "import-master", str(folder / "notes.csv"), "--market", "JJ"])
    assert result.exit_code == 2 and "无法读取文件" in result.output and "Traceback" not in result.output
    result = runner.invoke(args=["market", "import-master", str(tmp_path / "missing.xlsx"), "--market", "JJ"])
    assert result.exit_code == 2
