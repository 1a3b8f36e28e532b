"""Chinese by default, English on request; enum labels, app name, and a complete zh catalog."""
import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]


def _title(page):
    return re.search(r"<title>(.*?)</title>", page, re.S).group(1).strip()


def test_login_page_is_chinese_by_default(client, db):
    page = client.get("/login/").get_data(as_text=True)
    assert "登录" in page and "用户名" in page and "密码" in page
    assert "Sign In" not in page and "Username" not in page
    assert _title(page) == "市场管家"
    assert "中文" in page and "English" in page  # the language menu


def test_switching_to_english_and_back(client, db):
    resp = client.get("/lang/en")
    assert resp.status_code == 302
    page = client.get("/login/").get_data(as_text=True)
    assert "Sign In" in page and "Username" in page and "登录" not in page
    client.get("/lang/zh")
    assert "登录" in client.get("/login/").get_data(as_text=True)
    assert client.get("/lang/fr").status_code == 404


def test_menus_are_chinese_then_english(login_as, market):
    client = login_as("manager1")
    page = client.get("/tasks/").get_data(as_text=True)
    for text in ("日常运营", "今日待办", "摊位图", "市场", "商户", "租约", "水电表"):
        assert text in page, text
    assert "Daily tasks" not in page and "Operations" not in page
    client.get("/lang/en")
    page = client.get("/tasks/").get_data(as_text=True)
    for text in ("Operations", "Daily tasks", "Stall map", "Merchants", "Leases", "Meters to read"):
        assert text in page, text
    assert "今日待办" not in page


def test_enum_and_boolean_columns_show_labels(login_as, market):
    client = login_as("leader")
    units = client.get("/unitview/list/").get_data(as_text=True)
    assert "<td>已租</td>" in units
    assert "<td>leased</td>" not in units
    show = client.get(f"/unitview/show/{market.units_a[0].id}").get_data(as_text=True)
    assert "已租" in show and ">leased<" not in show
    meters = client.get("/meterview/list/").get_data(as_text=True)
    assert "<td>电</td>" in meters and "<td>是</td>" in meters and "<td>True</td>" not in meters
    leases = client.get("/leaseview/list/").get_data(as_text=True)
    assert "<td>按月</td>" in leases and "<td>生效中</td>" in leases
    assert "<td>A-001</td>" in leases  # units joined, not "[A-001]"
    client.get("/lang/en")
    units = client.get("/unitview/list/").get_data(as_text=True)
    assert "<td>Leased</td>" in units


def test_enum_select_in_forms_offers_labels(login_as, market):
    client = login_as("manager1")
    form = client.get(f"/unitview/edit/{market.units_a[0].id}").get_data(as_text=True)
    assert re.search(r'<option selected value="leased">已租</option>', form)
    assert '<option value="renovating">装修中</option>' in form
    # The labelled field still saves the enum value.
    unit = market.units_a[0]
    resp = client.post(f"/unitview/edit/{unit.id}", data={
        "market": str(market.market.id), "zone": str(market.zone_a.id), "code": unit.code, "floor": "1",
        "area_m2": "12", "status": "renovating",
    })
    assert resp.status_code == 302
    from app.extensions import db
    from app.models import Unit
    from app.models.enums import UnitStatus

    db.session.expire_all()
    assert db.session.get(Unit, unit.id).status == UnitStatus.renovating


def test_every_message_in_app_has_a_chinese_translation():
    """Every msgid extracted from app/ (as `make translations` users would) has a zh msgstr."""
    mapping = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    keywords = {"_": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)}
    found = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT / "app"), method_map=mapping, keywords=keywords
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, filename)
    with open(ROOT / "app/translations/zh/LC_MESSAGES/messages.po", "rb") as fh:
        catalog = read_po(fh)
    missing = sorted(
        f"{msgid!r} ({where})" for msgid, where in found.items()
        if not (catalog.get(msgid) and catalog.get(msgid).string)
    )
    assert not missing, "untranslated (add them to the end of messages.po):\n" + "\n".join(missing)


def test_enum_select_rejects_bad_values_and_allows_blank_when_nullable(login_as, market):
    client = login_as("admin")
    unit = market.units_a[0]
    data = {"market": str(market.market.id), "zone": str(market.zone_a.id), "code": unit.code, "floor": "1",
            "area_m2": "12"}
    for bad in ("", "demolished"):
        resp = client.post(f"/unitview/edit/{unit.id}", data={**data, "status": bad})
        assert resp.status_code == 200  # the form again, with an error; nothing saved
    rent = market.fee_items["rent"]
    form = client.get(f"/feeitemview/edit/{rent.id}").get_data(as_text=True)
    assert '<option selected value="">—</option>' in form  # meter type is optional
    assert '<option value="electricity">电</option>' in form


def test_datetimes_show_local_time_and_missing_values_are_blank(login_as, market):
    from app.utils.dates import format_local

    lease = market.leases[0]
    page = login_as("leader").get(f"/leaseview/show/{lease.id}").get_data(as_text=True)
    assert format_local(lease.created_dt) in page  # Asia/Shanghai, to the minute
    assert "+00:00" not in page and ">None<" not in page


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_catalogues_define_each_message_once(locale):
    po = ROOT / "app" / "translations" / locale / "LC_MESSAGES" / "messages.po"
    entries = re.findall(r'^(?:msgctxt "(.*)"\n)?msgid "(.*)"$', po.read_text(encoding="utf-8"), flags=re.M)
    repeated = [msgid for (ctx, msgid), n in Counter(entries).items() if n > 1 and msgid]
    assert repeated == []
