"""The onboarding (master data) import page: Admin only, template, upload, error workbook."""
import io

import openpyxl
import sqlalchemy as sa

from app.extensions import db
from app.models import Lease
from app.models.readings import ImportBatch, ImportStatus
from tests.services.test_master_import import workbook
from tests.views.test_imports import _run_worker_if_redis, _upload


def test_admin_downloads_the_template_and_imports_a_workbook(app, login_as, market):
    client = login_as("admin")
    page = client.get("/imports/master/").get_data(as_text=True)
    assert 'id="upload-form"' in page and "/imports/master/template.xlsx" in page
    template = client.get("/imports/master/template.xlsx")
    assert openpyxl.load_workbook(io.BytesIO(template.data)).sheetnames[:2] == ["收费项目", "摊位"]

    resp = _upload(client, workbook(), "期初.xlsx", market.market.id, base="/imports/master")
    assert resp.status_code == 302
    _run_worker_if_redis(app)
    db.session.expire_all()
    batch = db.session.scalar(sa.select(ImportBatch))
    assert batch.status == ImportStatus.done and batch.rejected_count == 5
    assert db.session.scalar(sa.select(Lease).where(Lease.code == "L90001")) is not None

    page = client.get(f"/imports/master/batch/{batch.id}").get_data(as_text=True)
    assert 'id="sheet-counts"' in page and "同一租约的摊位必须在同一片区" in page and "租约" in page
    status = client.get(f"/imports/master/batch/{batch.id}/status").get_json()
    assert list(status["error_files"]) == ["xlsx"]
    errors = client.get(status["error_files"]["xlsx"])
    book = openpyxl.load_workbook(io.BytesIO(errors.data))
    assert book.sheetnames == ["摊位", "表具", "租约", "租约费用"]
    assert client.get(f"/imports/master/batch/{batch.id}/errors.csv").status_code == 404


def test_only_admin_may_import_master_data(login_as, market):
    for username in ("clerk", "manager1", "leader", "finance"):
        client = login_as(username)
        assert client.get("/imports/master/").status_code in (302, 403), username
        resp = _upload(client, workbook(), "x.xlsx", market.market.id, base="/imports/master")
        assert resp.status_code in (302, 403)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportBatch)) == 0
