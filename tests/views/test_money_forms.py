"""Money in the back office lists and forms is yuan (¥1,500.50), stored as integer fen; the export
writes yuan numbers; the REST API under /api/v1/ stays in fen."""
import io
from datetime import date
from decimal import Decimal

import openpyxl
import sqlalchemy as sa

from app.extensions import db
from app.models import FeeItem, Lease
from tests.factories import make_bill


def lease_form(lease, **values):
    data = {
        "market": str(lease.market_id), "code": lease.code, "merchant": str(lease.merchant_id),
        "zone": str(lease.zone_id), "units": [str(u.id) for u in lease.units],
        "start_date": lease.start_date.isoformat(), "end_date": lease.end_date.isoformat(),
        "deposit_fen": "0", "billing_cycle": lease.billing_cycle.name, "status": lease.status.name, "note": "",
    }
    data.update(values)
    return data


def stored_deposit(lease_id):
    db.session.expire_all()
    return db.session.get(Lease, lease_id).deposit_fen


def test_manager_types_the_deposit_in_yuan_and_the_row_stores_fen(login_as, market):
    lease = market.leases[0]
    client = login_as("manager1")
    form = client.get(f"/leaseview/edit/{lease.id}").get_data(as_text=True)
    assert 'value="2000.00"' in form  # 200,000 fen shown as yuan to edit
    assert "押金（元）" in form
    resp = client.post(f"/leaseview/edit/{lease.id}", data=lease_form(lease, deposit_fen="¥1,500.50"))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    deposit = stored_deposit(lease.id)
    assert deposit == 150050 and isinstance(deposit, int)
    show = client.get(f"/leaseview/show/{lease.id}").get_data(as_text=True)
    assert "¥1,500.50" in show and "150050" not in show


def test_plain_and_full_width_yuan_are_accepted(login_as, market):
    lease = market.leases[0]
    client = login_as("manager1")
    for text, fen in (("1500", 150000), ("1500.00", 150000), ("¥1,500", 150000), ("１２３．５", 12350)):
        resp = client.post(f"/leaseview/edit/{lease.id}", data=lease_form(lease, deposit_fen=text))
        assert resp.status_code == 302, text
        assert stored_deposit(lease.id) == fen, text


def test_bad_yuan_text_gives_a_chinese_error_and_stores_nothing(login_as, market):
    lease = market.leases[0]
    client = login_as("manager1")
    for text, message in (
        ("1,500.5.0", "金额格式不正确"),
        ("abc", "金额格式不正确"),
        ("12.345", "金额最多保留两位小数"),
        ("-5", "金额不能为负数"),
        ("", "请填写金额"),
    ):
        resp = client.post(f"/leaseview/edit/{lease.id}", data=lease_form(lease, deposit_fen=text))
        page = resp.get_data(as_text=True)
        assert resp.status_code == 200, text
        assert message in page, text
        assert stored_deposit(lease.id) == 200000, text


def test_fee_item_price_in_yuan_keeps_fractions_of_a_fen(login_as, market):
    client = login_as("admin")
    resp = client.post("/feeitemview/add", data={
        "market": str(market.market.id), "code": "WATER", "name": "水费", "kind": "water",
        "pricing_mode": "metered", "meter_type": "water", "default_rate_fen": "¥0.755",
        "unit_label": "吨", "is_active": "y", "sort_order": "5",
    })
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    item = db.session.scalar(sa.select(FeeItem).where(FeeItem.code == "WATER"))
    assert item.default_rate_fen == Decimal("75.5")
    page = client.get("/feeitemview/list/").get_data(as_text=True)
    assert "¥0.755" in page  # WATER
    assert "¥60.00" in page and "¥50.00" in page and "¥0.68" in page  # RENT 6,000, MGMT 5,000, POWER 68 fen
    form = client.get(f"/feeitemview/edit/{item.id}").get_data(as_text=True)
    assert 'value="0.755"' in form


def test_bad_fee_item_price_adds_no_row(login_as, market):
    client = login_as("admin")
    resp = client.post("/feeitemview/add", data={
        "market": str(market.market.id), "code": "BAD", "name": "坏价格", "kind": "other",
        "pricing_mode": "fixed", "default_rate_fen": "一千五", "sort_order": "0",
    })
    assert resp.status_code == 200
    assert "单价格式不正确" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FeeItem).where(FeeItem.code == "BAD")) == 0


def test_lists_show_yuan_for_every_money_column(login_as, market):
    bill = make_bill(market.leases[0], amount_fen=150050, late_fee_fen=1234)
    db.session.commit()
    client = login_as("finance")
    bills = client.get("/billview/list/").get_data(as_text=True)
    assert "¥1,500.50" in bills and "¥12.34" in bills and "¥1,512.84" in bills  # amount, late fee, outstanding
    fees = client.get("/leasefeeview/list/").get_data(as_text=True)
    assert "<td>None</td>" not in fees
    tiers = client.get("/feetierview/list/").get_data(as_text=True)
    assert "¥0.68" in tiers and "¥0.98" in tiers
    assert bill.number in bills


def test_export_writes_yuan_numbers_with_a_yuan_format(login_as, market):
    make_bill(market.leases[0], amount_fen=150050)
    db.session.commit()
    client = login_as("finance")
    resp = client.get("/billview/export/")
    assert resp.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(resp.data)).active
    header = [c.value for c in sheet[1]]
    amount = sheet.cell(row=2, column=header.index("金额") + 1)
    assert amount.value == 1500.5
    assert "¥" in amount.number_format and "0.00" in amount.number_format
    fees = openpyxl.load_workbook(io.BytesIO(client.get("/feeitemview/export/").data)).active
    header = [c.value for c in fees[1]]
    prices = {row[0]: row[header.index("默认单价（元）")] for row in fees.iter_rows(min_row=2, values_only=True)}
    assert prices == {"RENT": 60, "MGMT": 50, "POWER": 0.68}


def test_rest_api_stays_in_fen(login_as, market):
    client = login_as("admin")
    info = client.get("/api/v1/leases/_info").get_json()
    fields = {f["name"]: f for f in info["add_columns"]}
    assert fields["deposit_fen"]["type"] == "Integer"
    assert fields["deposit_fen"]["description"] == "单位：分（1 元 = 100 分）"
    lease = market.leases[0]
    resp = client.put(f"/api/v1/leases/{lease.id}", json={"deposit_fen": 150050})
    assert resp.status_code == 200, resp.get_json()
    assert stored_deposit(lease.id) == 150050


def test_a_lease_price_is_typed_in_yuan_and_blank_means_the_item_default(login_as, market):
    from app.models import LeaseFee

    lease = market.leases[0]
    client = login_as("manager1")
    base = {"market": str(market.market.id), "lease": str(lease.id), "note": ""}
    resp = client.post("/leasefeeview/add", data={**base, "fee_item": str(market.fee_items["rent"].id),
                                                  "effective_from": "2026-12-01", "rate_fen": "¥65.5"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    resp = client.post("/leasefeeview/add", data={**base, "fee_item": str(market.fee_items["mgmt"].id),
                                                  "effective_from": "2026-12-01", "rate_fen": ""})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    rows = {row.fee_item.code: row.rate_fen for row in db.session.scalars(
        sa.select(LeaseFee).where(LeaseFee.lease_id == lease.id, LeaseFee.effective_from == date(2026, 12, 1)))}
    assert rows == {"RENT": Decimal("6550"), "MGMT": None}
    page = client.get("/leasefeeview/list/").get_data(as_text=True)
    assert "¥65.50" in page
