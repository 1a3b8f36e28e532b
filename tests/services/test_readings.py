"""Meter-reading import: encodings and formats, every check, roll-over, replacement, spikes,
re-import, corrections and billed readings."""
import io
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Meter, MeterReplacement
from app.models.enums import AuditAction
from app.models.readings import ImportBatch, ImportRowError, ImportStatus, MeterReading
from app.services.exceptions import ValidationFailed
from app.services.readings import (
    ReadingFileUnreadable, record_meter_reading, write_batch_error_file, write_readings_template,
)
from app.utils.tabular import read_table
from tests.fixtures.imports import (
    EN_HEADERS, FIXTURES, audit_count, csv_bytes, reading_count, reading_of, reasons, run_import, xlsx_bytes,
)

MAR, APR, MAY = date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)


def _meter(market, number):
    return next(m for m in market.meters if m.number == number)


def _seed(market, number, period, reading, **extra):
    """Store a reading directly (history for the checks)."""
    meter = _meter(market, number)
    row = MeterReading(market_id=market.market.id, meter_id=meter.id, zone_id=meter.zone_id, period=period,
                       reading=Decimal(reading), previous_reading=extra.pop("previous", Decimal(0)),
                       consumption=Decimal(extra.pop("consumption", reading)), **extra)
    db.session.add(row)
    db.session.commit()
    return row


# --- formats and encodings ----------------------------------------------------------------------


def test_gbk_csv_with_chinese_headers_and_crlf(market):
    content = (FIXTURES / "readings_gbk_crlf.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")  # really GBK, as Excel in China writes it
    assert b"\r\n" in content
    batch, result = run_import(market.market.id, content, "抄表.csv")
    assert (result.inserted, result.rejected) == (3, 1)
    assert reasons(result) == {5: "表号 EZ999 不存在"}
    row = reading_of(_meter(market, "EB001"), MAR)
    assert row.reading == Decimal("300") and row.consumption == Decimal("300")
    assert row.reader == "王师傅" and row.note == "表盘模糊，复核" and row.read_date == date(2026, 3, 30)
    assert row.zone_id == market.zone_b.id and row.market_id == market.market.id and row.batch_id == batch.id
    assert reading_of(_meter(market, "EA002"), MAR).reading == Decimal("845.5")
    db.session.refresh(batch)
    assert batch.status == ImportStatus.done
    assert (batch.processed_rows, batch.inserted_count, batch.rejected_count) == (4, 3, 1)
    assert batch.headers == {"readings": ["表号", "账期", "读数", "抄表日期", "抄表人", "备注"]}


def test_utf8_bom_csv_with_english_headers_and_lf(market):
    content = (FIXTURES / "readings_utf8_bom.csv").read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and b"\r\n" not in content
    _batch, result = run_import(market.market.id, content, "readings.csv")
    assert (result.inserted, result.rejected) == (2, 0)
    assert reading_of(_meter(market, "EB002"), MAR).note == "备注：新表"


def test_xlsx_with_numbers_and_dates_as_excel_stores_them(market):
    from datetime import datetime

    content = xlsx_bytes([
        ["EA001", "2026-03", 1200, datetime(2026, 3, 31), "陈录入", None],
        # Excel turns a typed 2026-04 into the date 2026-04-01; a reading typed as 1250.5 is a float.
        ["EA001", datetime(2026, 4, 1), 1250.5, "2026/4/30", None, "四月"],
    ])
    _batch, result = run_import(market.market.id, content, "readings.xlsx")
    assert (result.inserted, result.rejected) == (2, 0), result.errors
    april = reading_of(_meter(market, "EA001"), APR)
    assert april.reading == Decimal("1250.5") and april.previous_reading == Decimal("1200")
    assert april.consumption == Decimal("50.5") and april.read_date == date(2026, 4, 30)


def test_free_text_survives_any_characters(market):
    note = '他说"好"，路径 C:\\表\\1 {a,b} NULL'
    rows = [["EA001", "2026-03", "10", "", "NULL", note], ["EA002", "2026-03", "10", "", "  ", ""]]
    _batch, result = run_import(market.market.id, csv_bytes(rows))
    assert result.inserted == 2
    row = reading_of(_meter(market, "EA001"), MAR)
    assert row.note == note and row.reader == "NULL"
    empty = reading_of(_meter(market, "EA002"), MAR)
    assert empty.reader is None and empty.note is None


def test_period_and_date_spellings(market):
    rows = [["EA001", "2026/3", "10", "2026年3月31日", "", ""], ["EA002", "202603", "10", "20260331", "", ""],
            ["EB001", "2026年3月", "1,000", "2026.03.31", "", ""], ["EB002", "２０２６－０３", "１０", "", "", ""]]
    _batch, result = run_import(market.market.id, csv_bytes(rows))
    assert (result.inserted, result.rejected) == (4, 0), result.errors
    assert reading_of(_meter(market, "EB001"), MAR).reading == Decimal("1000")


# --- the checks ---------------------------------------------------------------------------------


def test_every_rejection_reason(market):
    meter_inactive = _meter(market, "EB002")
    meter_inactive.is_active = False
    db.session.commit()
    _seed(market, "EA002", MAR, "500")
    rows = [
        ["", "2026-04", "10", "", "", ""],                     # 2 missing meter number
        ["EZ999", "2026-04", "10", "", "", ""],                # 3 unknown meter
        ["EA001", "2026-13", "10", "", "", ""],                # 4 malformed period
        ["EA001", "", "10", "", "", ""],                       # 5 missing period
        ["EA001", "2099-01", "10", "", "", ""],                # 6 period after this month
        ["EA001", "2026-04", "", "", "", ""],                  # 7 missing reading
        ["EA001", "2026-04", "12a", "", "", ""],               # 8 malformed number
        ["EA001", "2026-04", "-5", "", "", ""],                # 9 negative
        ["EA001", "2026-04", "1.23456", "", "", ""],           # 10 too many decimals
        ["EA001", "2026-04", "10", "2026-02-30", "", ""],      # 11 malformed date
        ["EA001", "2026-04", "10", "2099-01-01", "", ""],      # 12 date in the future
        ["EA001", "2026-04", "100000", "", "", ""],            # 13 above the meter's maximum
        ["EA001", "2024-06", "10", "", "", ""],                # 14 before the meter was installed
        ["EB002", "2026-04", "10", "", "", ""],                # 15 inactive meter
        ["EA002", "2026-04", "300", "", "", ""],               # 16 below previous 500, no roll-over
        ["EB001", "2026-04", "10", "", "", ""],                # 17 good
        ["EB001", "2026-04", "11", "", "", ""],                # 18 duplicate of line 17
        ["EA001", "2026-04", "10", "", "x" * 51, ""],          # 19 reader too long
    ]
    _batch, result = run_import(market.market.id, csv_bytes(rows))
    got = reasons(result)
    assert result.inserted == 1 and result.rejected == 17
    assert got[2] == "缺少表号"
    assert got[3] == "表号 EZ999 不存在"
    assert got[4].startswith("账期格式错误：“2026-13”")
    assert got[5] == "缺少账期"
    assert got[6] == "账期 2099-01 晚于本月，不能提前录入"
    assert got[7] == "缺少读数"
    assert got[8] == "读数不是有效数字：“12a”"
    assert got[9] == "读数不能为负数：-5"
    assert got[10] == "读数最多保留 4 位小数：1.23456"
    assert got[11].startswith("抄表日期格式错误：“2026-02-30”")
    assert got[12] == "抄表日期 2099-01-01 晚于今天"
    assert got[13] == "读数 100000 超过该表的最大读数 99999"
    assert got[14] == "账期 2024-06 早于该表的安装日期 2025-01-01"
    assert got[15] == "表 EB002 已停用"
    assert got[16].startswith("读数 300 低于上期读数 500（2026-03），且不是合理的表码翻转")
    assert 17 not in got
    assert got[18] == "与第 17 行重复（同一表号、同一账期）"
    assert got[19] == "抄表人过长（最多 50 字）"
    stored = db.session.scalars(sa.select(ImportRowError.line_no).order_by(ImportRowError.line_no)).all()
    assert stored == sorted(got)


def test_previous_reading_is_latest_earlier_period_or_start_reading(market):
    meter = _meter(market, "EA001")
    meter.start_reading = Decimal("1000")
    db.session.commit()
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1100", "", "", ""]]))
    assert reading_of(meter, MAR).previous_reading == Decimal("1000")
    assert reading_of(meter, MAR).consumption == Decimal("100")
    # A gap: May is measured from March.
    run_import(market.market.id, csv_bytes([["EA001", "2026-05", "1175", "", "", ""]]))
    may = reading_of(meter, MAY)
    assert may.previous_reading == Decimal("1100") and may.consumption == Decimal("75")


def test_multiplier_applies_to_consumption(market):
    meter = _meter(market, "EA001")
    meter.multiplier = Decimal("40")
    db.session.commit()
    run_import(market.market.id, csv_bytes([["EA001", "2026-03", "12.35", "", "", ""]]))
    row = reading_of(meter, MAR)
    assert row.consumption == Decimal("494.0000") and isinstance(row.consumption, Decimal)


def test_rollover_accepted_when_the_maximum_makes_it_plausible(market):
    _seed(market, "EA001", MAR, "99950")
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-04", "30", "", "", ""]]))
    assert result.rejected == 0 and result.rollover == 1
    row = reading_of(_meter(market, "EA001"), APR)
    assert row.is_rollover is True and row.consumption == Decimal("80")
    assert row.previous_reading == Decimal("99950")


def test_implausible_drop_is_rejected(market):
    _seed(market, "EA001", MAR, "50000")
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-04", "30", "", "", ""]]))
    assert result.rejected == 1 and reading_of(_meter(market, "EA001"), APR) is None
    assert "低于上期读数 50000（2026-03），且不是合理的表码翻转（该表最大读数 99999）" in result.errors[0].reason


def test_recorded_replacement_between_readings(market):
    meter = _meter(market, "EA001")
    _seed(market, "EA001", MAR, "5000")
    db.session.add(MeterReplacement(market_id=market.market.id, meter_id=meter.id, replaced_date=date(2026, 4, 12),
                                    old_final_reading=Decimal("5040"), new_start_reading=Decimal("10")))
    db.session.commit()
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-04", "70", "", "", ""]]))
    assert result.rejected == 0 and result.replaced == 1
    row = reading_of(meter, APR)
    # old_final - previous + new reading - new_start = 40 + 60
    assert row.consumption == Decimal("100") and row.has_replacement is True and row.is_rollover is False


def test_reading_below_the_new_meter_start_is_rejected(market):
    meter = _meter(market, "EA001")
    _seed(market, "EA001", MAR, "5000")
    db.session.add(MeterReplacement(market_id=market.market.id, meter_id=meter.id, replaced_date=date(2026, 4, 12),
                                    old_final_reading=Decimal("5040"), new_start_reading=Decimal("10")))
    db.session.commit()
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-04", "5", "", "", ""]]))
    assert result.errors[0].reason == "读数 5 低于新表起始读数 10（2026-04-12 换表）"


def test_consumption_spike_is_stored_but_flagged(market):
    for month, reading in enumerate([100, 210, 300, 400, 520, 600], start=1):
        _seed(market, "EA001", date(2025, month, 1), reading, consumption=100)
    rows = [["EA001", "2025-07", "1000", "", "", ""]]  # 400 > 3 x median 100
    _batch, result = run_import(market.market.id, csv_bytes(rows))
    assert result.rejected == 0 and result.flagged == 1
    row = reading_of(_meter(market, "EA001"), date(2025, 7, 1))
    assert row.is_flagged is True and row.consumption == Decimal("400")
    assert row.flag_reason == "用量 400 超过近 6 期用量中位数 100 的 3 倍，请复核"
    # Three times the median is still normal.
    _seed(market, "EA002", date(2025, 6, 1), "100", consumption=100)
    run_import(market.market.id, csv_bytes([["EA002", "2025-07", "400", "", "", ""]]))
    assert reading_of(_meter(market, "EA002"), date(2025, 7, 1)).is_flagged is False


def test_several_periods_in_one_file_in_any_order_and_chunks(market):
    rows = [["EA001", "2026-05", "300", "", "", ""], ["EA001", "2026-03", "100", "", "", ""],
            ["EA002", "2026-03", "10", "", "", ""], ["EA001", "2026-04", "180", "", "", ""]]
    _batch, result = run_import(market.market.id, csv_bytes(rows), chunk_size=2)
    assert result.rejected == 0, result.errors
    meter = _meter(market, "EA001")
    got = [(r.previous_reading, r.consumption) for r in (reading_of(meter, p) for p in (MAR, APR, MAY))]
    assert got == [(Decimal(0), Decimal(100)), (Decimal(100), Decimal(80)), (Decimal(180), Decimal(120))]
    assert result.recomputed >= 1


# --- re-import, corrections, billed readings ----------------------------------------------------


def test_importing_the_same_file_twice_changes_nothing(market):
    content = (FIXTURES / "readings_gbk_crlf.csv").read_bytes()
    run_import(market.market.id, content, "a.csv")
    readings, audits = reading_count(), audit_count()
    before = {r.id: (r.reading, r.updated_dt, r.batch_id) for r in db.session.scalars(sa.select(MeterReading))}
    _batch, result = run_import(market.market.id, content, "a.csv")
    assert (result.inserted, result.updated, result.unchanged, result.rejected) == (0, 0, 3, 1)
    db.session.expire_all()
    assert reading_count() == readings and audit_count() == audits
    after = {r.id: (r.reading, r.updated_dt, r.batch_id) for r in db.session.scalars(sa.select(MeterReading))}
    assert after == before


def test_corrected_unbilled_reading_replaces_it_with_an_audit_entry(market):
    run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1200", "2026-03-31", "陈", ""]]))
    row = reading_of(_meter(market, "EA001"), MAR)
    batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1210", "2026-03-31", "陈", "重抄"]]))
    assert (result.updated, result.inserted) == (1, 0)
    fixed = reading_of(_meter(market, "EA001"), MAR)
    assert fixed.id == row.id and fixed.reading == Decimal("1210") and fixed.consumption == Decimal("1210")
    assert fixed.note == "重抄" and fixed.batch_id == batch.id
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "meter_readings",
                                                        AuditLog.row_id == str(row.id),
                                                        AuditLog.action == AuditAction.update))
    assert entry.before["reading"] == "1200" and entry.after["reading"] == "1210"
    assert entry.before["note"] is None and entry.after["note"] == "重抄"
    assert f"批次 #{batch.id} 第 2 行" in entry.reason


def test_billed_reading_can_only_be_corrected_by_an_adjustment_bill(market):
    from app.utils.dates import now_utc

    _seed(market, "EA001", MAR, "1200", bill_id=77, billed_dt=now_utc())
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1250", "", "", ""]]))
    assert result.rejected == 1
    assert result.errors[0].reason == "该表 2026-03 的读数 1200 已出账（账单 #77），只能通过调整账单更正"
    assert reading_of(_meter(market, "EA001"), MAR).reading == Decimal("1200")
    # The same value again (e.g. the original file re-imported after billing) is simply unchanged.
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1200", "", "", "x"]]))
    assert (result.unchanged, result.rejected) == (1, 0)


def test_earlier_period_cannot_change_a_billed_following_reading(market):
    from app.utils.dates import now_utc

    _seed(market, "EA001", APR, "1300", previous=Decimal(0), consumption=1300, bill_id=5, billed_dt=now_utc())
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1200", "", "", ""]]))
    assert result.rejected == 1 and "下一账期 2026-04 的读数已出账" in result.errors[0].reason


def test_reading_above_the_following_period_is_rejected(market):
    _seed(market, "EA001", APR, "1300", consumption=1300)
    _batch, result = run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1400", "", "", ""]]))
    assert result.errors[0].reason == "读数 1400 高于下一账期 2026-04 的读数 1300，请先核对"


def test_correction_recomputes_the_following_unbilled_period(market):
    meter = _meter(market, "EA001")
    run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1000", "", "", ""],
                                            ["EA001", "2026-04", "1100", "", "", ""]]))
    audits = audit_count()
    run_import(market.market.id, csv_bytes([["EA001", "2026-03", "1050", "", "", ""]]))
    april = reading_of(meter, APR)
    assert april.previous_reading == Decimal("1050") and april.consumption == Decimal("50")
    # One entry for the correction, one for the recomputed April, one summary for the import.
    assert audit_count() == audits + 3


# --- scope, hand entry, files -------------------------------------------------------------------


def test_manager_zone_restriction_rejects_other_zones_meters(market):
    rows = [["EA001", "2026-03", "10", "", "", ""], ["EB001", "2026-03", "10", "", "", ""]]
    _batch, result = run_import(market.market.id, csv_bytes(rows), zone_ids=[market.zone_a.id])
    assert result.inserted == 1
    assert reasons(result) == {3: "表号 EB001 不存在或不属于您负责的片区"}


def test_hand_entry_goes_through_the_same_checks(market):
    values = {"meter_number": "EA001", "period": "2026-03", "reading": "1200", "read_date": "2026-03-31",
              "reader": "陈", "note": ""}
    outcome = record_meter_reading(market.market.id, values)
    db.session.commit()
    assert outcome["status"] == "created" and outcome["consumption"] == Decimal("1200")
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.table_name == "meter_readings",
                                                        AuditLog.action == AuditAction.insert))
    assert entry.after["reading"] == "1200" and entry.row_id == str(reading_of(_meter(market, "EA001"), MAR).id)
    assert record_meter_reading(market.market.id, values)["status"] == "unchanged"
    with pytest.raises(ValidationFailed) as exc:
        record_meter_reading(market.market.id, {**values, "period": "2026-04", "reading": "900"})
    assert "低于上期读数 1200" in exc.value.message
    with pytest.raises(ValidationFailed) as exc:
        record_meter_reading(market.market.id, {**values, "meter_number": "EB001"}, zone_ids=[market.zone_a.id])
    assert exc.value.message == "表号 EB001 不存在或不属于您负责的片区"
    updated = record_meter_reading(market.market.id, {**values, "reading": "1201"})
    assert updated["status"] == "updated"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_error_file_has_the_same_columns_plus_a_reason(market, fmt):
    rows = [["EA001", "2026-03", "10", "2026-03-31", "陈", "好"], ["EZ1", "2026-03", "5", "", "王", "无此表"],
            ["EA002", "三月", "5", "", "", ""]]
    content = csv_bytes(rows, headers=EN_HEADERS, encoding="gbk")
    batch, _result = run_import(market.market.id, content)
    buf = io.BytesIO()
    assert write_batch_error_file(batch, buf, fmt) == 2
    buf.seek(0)
    table = read_table(buf, f"errors.{fmt}", columns={k: [k] for k in EN_HEADERS + ["错误原因"]})
    got = [list(row.cells) for _line, row in table]
    assert table.headers == EN_HEADERS + ["错误原因"]
    assert got == [["EZ1", "2026-03", "5", "", "王", "无此表", "表号 EZ1 不存在"],
                   ["EA002", "三月", "5", "", "", "", "账期格式错误：“三月”（应为 YYYY-MM，如 2026-03）"]]
    # The fixed error file imports cleanly.
    fixed = csv_bytes([["EA002", "2026-03", "5", "", "", ""]], headers=EN_HEADERS)
    _b, again = run_import(market.market.id, fixed)
    assert (again.inserted, again.rejected) == (1, 0)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_template_imports_as_is(market, fmt):
    buf = io.BytesIO()
    write_readings_template(buf, fmt)
    buf.seek(0)
    table = read_table(buf, f"t.{fmt}", columns={"m": ["表号"]}, required={"m"})
    assert table.headers == ["表号", "账期", "读数", "抄表日期", "抄表人", "备注"]
    assert len(list(table)) == 2


@pytest.mark.parametrize("content, filename, message", [
    (b"meter,period\nEA001,2026-03\n", "r.csv", "缺少必需的列"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "r.xls", ".xls"),
    (b"", "r.csv", "文件是空的"),
    (b"not a zip", "r.xlsx", "不是 Excel 文件"),
])
def test_unreadable_files(market, content, filename, message):
    from app.models.readings import ImportKind
    from app.services.readings import create_import_batch, import_meter_readings

    batch = create_import_batch(market.market.id, ImportKind.readings, filename)
    with pytest.raises(ReadingFileUnreadable) as exc:
        import_meter_readings(batch, io.BytesIO(content), filename)
    assert message in exc.value.message
    db.session.rollback()
    assert reading_count() == 0


def test_batch_is_not_audited_and_meters_are_looked_up_per_market(market):
    from tests.factories import MarketFactory, MeterFactory, UnitFactory, ZoneFactory

    other = MarketFactory(code="OT")
    zone = ZoneFactory(market=other, code="X")
    MeterFactory(market=other, zone=zone, unit=UnitFactory(market=other, zone=zone, code="X-1"), number="EA001")
    db.session.commit()
    audits = audit_count()
    _b, result = run_import(other.id, csv_bytes([["EA001", "2026-03", "5", "", "", ""],
                                                 ["EA002", "2026-03", "5", "", "", ""]]))
    assert result.inserted == 1 and reasons(result) == {3: "表号 EA002 不存在"}
    assert reading_of(_meter(market, "EA001"), MAR) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportBatch)) == 1
    assert audit_count() == audits + 1  # the import's summary entry only
    assert db.session.scalar(sa.select(Meter.number).where(Meter.market_id == other.id)) == "EA001"
