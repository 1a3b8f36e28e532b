"""The readings upload page, batch page, progress endpoint, error file, hand entry and scoping."""
import io
import re
from datetime import date
from decimal import Decimal

import openpyxl
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.readings import ImportBatch, ImportStatus, MeterReading
from app.utils.tabular import read_table
from tests.fixtures.imports import FIXTURES, csv_bytes, reading_count, xlsx_bytes


def _upload(client, content, filename="readings.csv", market_id=None, base="/imports/readings"):
    data = {"file": (io.BytesIO(content), filename)}
    if market_id is not None:
        data["market"] = str(market_id)
    return client.post(f"{base}/upload", data=data, content_type="multipart/form-data")


def _run_worker_if_redis(app):
    """With REDIS_URL the upload only queued the job: run it with a burst worker (embedded: already ran)."""
    from rq import SimpleWorker

    from app.queues import get_queue, is_embedded

    if not is_embedded():
        queue = get_queue("imports")
        SimpleWorker([queue], connection=queue.connection).work(burst=True)


def _latest_batch():
    db.session.expire_all()
    return db.session.scalar(sa.select(ImportBatch).order_by(ImportBatch.id.desc()))


def test_clerk_sees_upload_page_with_templates(login_as, market):
    page = login_as("clerk").get("/imports/readings/").get_data(as_text=True)
    assert 'id="upload-form"' in page and 'type="file"' in page
    assert "/imports/readings/template.xlsx" in page and "/imports/readings/template.csv" in page
    assert "/imports/readings/enter" in page


def test_clerk_uploads_gbk_csv_and_follows_the_batch(app, login_as, market):
    client = login_as("clerk")
    resp = _upload(client, (FIXTURES / "readings_gbk_crlf.csv").read_bytes(), "三月抄表.csv", market.market.id)
    assert resp.status_code == 302
    _run_worker_if_redis(app)
    batch = _latest_batch()
    assert resp.headers["Location"].endswith(f"/imports/readings/batch/{batch.id}")
    assert batch.status == ImportStatus.done and batch.username == "clerk" and batch.filename == "三月抄表.csv"
    assert batch.content is None  # the bytes are dropped once imported
    assert reading_count() == 3

    status = client.get(f"/imports/readings/batch/{batch.id}/status").get_json()
    assert status["finished"] is True and status["percent"] == 100 and status["status"] == "done"
    assert (status["processed"], status["inserted"], status["rejected"], status["unchanged"]) == (4, 3, 1, 0)
    assert set(status["error_files"]) == {"csv", "xlsx"}

    page = client.get(f"/imports/readings/batch/{batch.id}").get_data(as_text=True)
    assert "表号 EZ999 不存在" in page and 'id="rejected-rows"' in page
    assert re.search(r'id="count-inserted">3<', page) and re.search(r'id="count-rejected"[^>]*>1<', page)

    csv_resp = client.get(status["error_files"]["csv"])
    assert csv_resp.status_code == 200 and csv_resp.data.startswith(b"\xef\xbb\xbf")
    with read_table(io.BytesIO(csv_resp.data), "e.csv", columns={"m": ["表号"]}) as table:
        rows = [list(r.cells) for _l, r in table]
        assert table.headers == ["表号", "账期", "读数", "抄表日期", "抄表人", "备注", "错误原因"]
    assert rows == [["EZ999", "2026-03", "10", "2026-03-31", "陈录入", "不存在的表", "表号 EZ999 不存在"]]
    xlsx_resp = client.get(status["error_files"]["xlsx"])
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_resp.data)).active
    assert [c.value for c in sheet[2]] == ["EZ999", "2026-03", "10", "2026-03-31", "陈录入", "不存在的表", "表号 EZ999 不存在"]

    listing = client.get("/imports/readings/").get_data(as_text=True)
    assert "三月抄表.csv" in listing


def test_uploading_the_same_file_again_changes_nothing(app, login_as, market):
    from tests.fixtures.imports import audit_count

    client = login_as("clerk")
    content = (FIXTURES / "readings_utf8_bom.csv").read_bytes()
    _upload(client, content, "a.csv", market.market.id)
    _run_worker_if_redis(app)
    readings, audits = reading_count(), audit_count()
    _upload(client, content, "a.csv", market.market.id)
    _run_worker_if_redis(app)
    batch = _latest_batch()
    assert (batch.inserted_count, batch.updated_count, batch.unchanged_count) == (0, 0, 2)
    assert reading_count() == readings and audit_count() == audits


def test_xlsx_upload(app, login_as, market):
    client = login_as("clerk")
    _upload(client, xlsx_bytes([["EA001", "2026-03", 15, "2026-03-31", "", ""]]), "r.xlsx", market.market.id)
    _run_worker_if_redis(app)
    assert _latest_batch().inserted_count == 1


def test_unreadable_upload_shows_the_reason(app, login_as, market):
    client = login_as("clerk")
    _upload(client, b"foo,bar\n1,2\n", "r.csv", market.market.id)
    _run_worker_if_redis(app)
    batch = _latest_batch()
    assert batch.status == ImportStatus.failed and "缺少必需的列" in batch.message
    page = client.get(f"/imports/readings/batch/{batch.id}").get_data(as_text=True)
    assert "缺少必需的列" in page
    assert client.get(f"/imports/readings/batch/{batch.id}/status").get_json()["status"] == "failed"


def test_upload_refuses_other_file_types(login_as, market):
    resp = _upload(login_as("clerk"), b"%PDF-1.4", "r.pdf", market.market.id)
    assert resp.status_code == 400 and "请上传 .xlsx 或 .csv 文件" in resp.get_data(as_text=True)
    assert _latest_batch() is None


def test_manager_imports_only_their_zones_meters(app, login_as, market):
    client = login_as("manager1")
    assert client.get("/imports/readings/").status_code == 200
    rows = [["EA001", "2026-03", "10", "", "", ""], ["EB001", "2026-03", "10", "", "", ""]]
    _upload(client, csv_bytes(rows), "m.csv", market.market.id)
    _run_worker_if_redis(app)
    batch = _latest_batch()
    assert (batch.inserted_count, batch.rejected_count) == (1, 1)
    page = client.get(f"/imports/readings/batch/{batch.id}").get_data(as_text=True)
    assert "表号 EB001 不存在或不属于您负责的片区" in page
    stored = db.session.scalars(sa.select(MeterReading.zone_id)).all()
    assert stored == [market.zone_a.id]
    # manager2 does not see manager1's batch; the clerk does.
    assert login_as("manager2").get(f"/imports/readings/batch/{batch.id}").status_code == 404
    assert login_as("clerk").get(f"/imports/readings/batch/{batch.id}").status_code == 200


def test_leader_and_finance_read_but_cannot_upload(app, login_as, market):
    clerk = login_as("clerk")
    _upload(clerk, csv_bytes([["EZ1", "2026-03", "1", "", "", ""]]), "x.csv", market.market.id)
    _run_worker_if_redis(app)
    batch = _latest_batch()
    for username in ("leader", "finance"):
        client = login_as(username)
        page = client.get("/imports/readings/").get_data(as_text=True)
        assert "x.csv" in page and 'id="upload-form"' not in page
        assert client.get(f"/imports/readings/batch/{batch.id}/errors.csv").status_code == 200
        resp = _upload(client, csv_bytes([["EA001", "2026-03", "1", "", "", ""]]), "y.csv", market.market.id)
        assert resp.status_code in (302, 403) and "/login" in resp.headers.get("Location", "/login")
        assert client.get("/imports/readings/enter").status_code in (302, 403)
    assert reading_count() == 0
    assert login_as("repairer1").get("/imports/readings/").status_code in (302, 403)


def test_template_downloads(login_as, market):
    client = login_as("clerk")
    resp = client.get("/imports/readings/template.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(resp.data)).active
    assert [c.value for c in sheet[1]] == ["表号", "账期", "读数", "抄表日期", "抄表人", "备注"]
    resp = client.get("/imports/readings/template.csv?lang=en")
    assert resp.data.decode("utf-8-sig").splitlines()[0] == "Meter number,Period,Reading,Reading date,Reader,Note"


def test_hand_entry_form(login_as, market):
    client = login_as("clerk")
    form = client.get("/imports/readings/enter?meter=EA001").get_data(as_text=True)
    assert 'id="entry-form"' in form and 'value="EA001"' in form
    data = {"market": str(market.market.id), "meter_number": "EA001", "period": "2026-03", "reading": "1200",
            "read_date": "2026-03-31", "reader": "陈", "note": ""}
    page = client.post("/imports/readings/enter", data=data).get_data(as_text=True)
    assert 'id="entry-consumption">1200<' in page and 'id="recent-readings"' in page
    resp = client.post("/imports/readings/enter", data={**data, "period": "2026-04", "reading": "100"})
    assert resp.status_code == 422 and "低于上期读数 1200" in resp.get_data(as_text=True)
    db.session.expire_all()
    reading = db.session.scalar(sa.select(MeterReading))
    assert reading.period == date(2026, 3, 1) and reading.reading == Decimal("1200") and reading.batch_id is None


def test_hand_entry_by_manager_is_scoped(login_as, market):
    client = login_as("manager1")
    data = {"market": str(market.market.id), "meter_number": "EB001", "period": "2026-03", "reading": "10"}
    resp = client.post("/imports/readings/enter", data=data)
    assert resp.status_code == 422 and "不属于您负责的片区" in resp.get_data(as_text=True)
    assert reading_count() == 0


def test_readings_list_is_zone_scoped(login_as, market):
    from app.services.readings import record_meter_reading

    for number in ("EA001", "EB001"):
        record_meter_reading(market.market.id, {"meter_number": number, "period": "2026-03", "reading": "7"})
    db.session.commit()
    page = login_as("manager1").get("/meterreadingview/list/").get_data(as_text=True)
    assert "EA001" in page and "EB001" not in page
    page = login_as("finance").get("/meterreadingview/list/").get_data(as_text=True)
    assert "EA001" in page and "EB001" in page and "2026-03" in page
    assert login_as("clerk").get("/meterreadingview/add").status_code in (302, 403, 404)


@pytest.mark.parametrize("username", ["clerk", "manager1"])
def test_menu_shows_readings(login_as, market, username):
    page = login_as(username).get("/imports/readings/").get_data(as_text=True)
    assert "抄表读数" in page and "导入抄表读数" in page
