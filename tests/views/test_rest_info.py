"""The REST API's _info endpoint describes fields with their labels and real descriptions, never
with the translation catalog's header (gettext("") returns it)."""
import pytest

RESOURCES = ["zones", "units", "merchants", "leases", "meters"]


def field_infos(client, resource):
    resp = client.get(f"/api/v1/{resource}/_info")
    assert resp.status_code == 200
    data = resp.get_json()
    return [f for key in ("add_columns", "edit_columns") for f in data.get(key, [])]


@pytest.mark.parametrize("resource", RESOURCES)
def test_info_descriptions_are_empty_or_meaningful_in_chinese(login_as, market, resource):
    fields = field_infos(login_as("admin"), resource)
    assert fields
    for field in fields:
        assert "Project-Id-Version" not in field["description"], field["name"]
        assert "Project-Id-Version" not in field["label"], field["name"]
        assert field["description"] in ("", "单位：分（1 元 = 100 分）"), field
        assert field["label"], field["name"]


def test_info_labels_and_descriptions_in_chinese_and_english(login_as, market):
    client = login_as("admin")
    fields = {f["name"]: f for f in field_infos(client, "leases")}
    assert fields["deposit_fen"]["label"] == "押金"  # the API is in fen: no "（元）" here
    assert fields["deposit_fen"]["description"] == "单位：分（1 元 = 100 分）"
    assert fields["code"]["description"] == "" and fields["code"]["label"] == "编号"
    units = {f["name"]: f for f in field_infos(client, "units")}
    assert units["area_m2"]["label"] == "面积（m²）"
    client.get("/lang/en")
    fields = {f["name"]: f for f in field_infos(client, "leases")}
    assert fields["deposit_fen"]["description"] == "In fen (1 yuan = 100 fen)"
    assert fields["code"]["description"] == "" and fields["code"]["label"] == "Code"
    assert all("Project-Id-Version" not in f["description"] for f in fields.values())
