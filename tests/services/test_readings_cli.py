"""`flask market import-readings`: counts printed, exit 0 / 3 / 2, never a traceback."""
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.models.readings import ImportBatch, MeterReading
from app.utils.tabular import read_table
from tests.fixtures.imports import FIXTURES, csv_bytes, reading_count


def _invoke(app, *args):
    return app.test_cli_runner().invoke(args=["market", "import-readings", *args])


def test_all_rows_accepted_exits_0(app, market, tmp_path):
    path = tmp_path / "march.csv"
    path.write_bytes(csv_bytes([["EA001", "2026-03", "1200", "2026-03-31", "陈", ""],
                                ["EB001", "2026-03", "300", "", "", ""]], encoding="gbk"))
    result = _invoke(app, str(path), "--market", "JJ")
    assert result.exit_code == 0, result.output
    assert "inserted=2" in result.output and "rejected=0" in result.output
    assert "新增 2" in result.output
    db.session.expire_all()
    assert reading_count() == 2
    batch = db.session.scalar(sa.select(ImportBatch))
    assert batch.source == "cli" and batch.filename == "march.csv" and batch.inserted_count == 2
    assert not (tmp_path / "march.errors.csv").exists()
    # Again: nothing changes, still exit 0.
    again = _invoke(app, str(path), "--market", "JJ")
    assert again.exit_code == 0 and "unchanged=2" in again.output


def test_some_rows_rejected_exits_3_and_writes_the_error_file(app, market, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes((FIXTURES / "readings_gbk_crlf.csv").read_bytes())
    result = _invoke(app, str(path), "--market", "JJ")
    assert result.exit_code == 3, result.output
    assert "rejected=1" in result.output and "第 5 行：表号 EZ999 不存在" in result.output
    errors = tmp_path / "gbk.errors.csv"
    assert errors.exists() and str(errors) in result.output
    with read_table(errors, columns={"m": ["表号"]}) as table:
        rows = [list(row.cells) for _l, row in table]
    assert rows == [["EZ999", "2026-03", "10", "2026-03-31", "陈录入", "不存在的表", "表号 EZ999 不存在"]]
    db.session.expire_all()
    assert reading_count() == 3  # good rows stored
    reading = db.session.scalar(sa.select(MeterReading).where(MeterReading.period == date(2026, 3, 1),
                                                              MeterReading.reading == Decimal("845.5")))
    assert reading is not None


def test_error_file_location_can_be_chosen(app, market, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(csv_bytes([["EZ1", "2026-03", "1", "", "", ""]]))
    target = tmp_path / "out"
    target.mkdir()
    result = _invoke(app, str(path), "--market", "JJ", "--errors", str(target / "bad.xlsx"))
    assert result.exit_code == 3
    with read_table(target / "bad.xlsx", columns={"m": ["表号"]}) as table:
        assert table.headers[-1] == "错误原因"


def test_unreadable_file_exits_2_without_traceback(app, market, tmp_path):
    bad = tmp_path / "old.xls"
    bad.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64)
    result = _invoke(app, str(bad), "--market", "JJ")
    assert result.exit_code == 2 and "无法读取文件" in result.output and "Traceback" not in result.output
    missing_columns = tmp_path / "cols.csv"
    missing_columns.write_text("meter,value\nEA001,1\n")
    result = _invoke(app, str(missing_columns), "--market", "JJ")
    assert result.exit_code == 2 and "缺少必需的列：账期、读数" in result.output
    result = _invoke(app, str(tmp_path / "nope.csv"), "--market", "JJ")
    assert result.exit_code == 2 and "不存在" in result.output
    db.session.expire_all()
    assert reading_count() == 0


def test_unknown_market_exits_1(app, market, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(csv_bytes([["EA001", "2026-03", "1", "", "", ""]]))
    result = _invoke(app, str(path), "--market", "NOPE")
    assert result.exit_code == 1 and "市场代码 NOPE 不存在" in result.output
