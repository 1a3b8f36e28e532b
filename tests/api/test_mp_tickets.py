"""Mini-program tickets: filing with a unit, photo upload as wx.uploadFile sends it (multipart), the list
and the detail, other merchants' tickets (404), signed photo URLs, and cancel / reopen / rate rules."""
from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.tickets import Ticket, TicketPhoto, TicketStatus
from app.services import tickets as svc
from tests.api.helpers import API, MpClients, assert_error
from tests.tickets_support import jpeg_bytes, png_bytes


@pytest.fixture
def owner(mp_client, market):
    """The owner of merchant A1 (units A-001), logged in through the fake WeChat."""
    return mp_client.bound(market.merchants_a[0])


def _create(client, **body):
    body = {"kind": "repair", "description": "水龙头漏水，地面湿滑", **body}
    return client.post("tickets", json=body)


def _upload(client, ticket_id, data, filename="photo.jpg", **extra):
    form = {"file": (io.BytesIO(data), filename, "image/jpeg"), **extra}
    return client.post(f"tickets/{ticket_id}/photos", data=form, content_type="multipart/form-data")


def _path(url):
    return urlsplit(url).path


def _staff_resolves(ticket_id, staff, note="已更换阀门"):
    svc.accept_ticket(ticket_id, staff["repairer1"])
    svc.resolve_ticket(ticket_id, staff["repairer1"], note)
    db.session.commit()


def test_file_a_repair_for_one_of_the_merchants_units(owner, market):
    resp = _create(owner, unit_id=market.units_a[0].id, urgency="urgent", title="漏水")
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["number"].startswith("JJ-T") and len(body["number"]) == len("JJ-T261123-0001")
    assert (body["kind"], body["urgency"], body["status"], body["unit_code"], body["title"]) == (
        "repair", "urgent", "submitted", "A-001", "漏水")
    assert body["is_overdue"] is False and body["photo_count"] == 0 and body["photos"] == []
    assert (body["can_cancel"], body["can_rate"], body["can_reopen"]) == (True, False, False)
    assert [(e["action"], e["by"]) for e in body["events"]] == [("submitted", "商户")]
    row = db.session.get(Ticket, body["id"])
    assert (row.merchant_id, row.zone_id, row.created_by_wechat_user_id is not None) == (
        market.merchants_a[0].id, market.zone_a.id, True)


def test_a_unit_of_another_merchant_is_refused(owner, market):
    err = assert_error(_create(owner, unit_id=market.units_b[0].id), 422, "unit_not_own")
    assert "摊位" in err["message"]
    assert_error(_create(owner, unit_id=market.units_a[1].id), 422, "unit_not_own")  # A-002 is merchant A2's
    assert_error(_create(owner, kind="praise"), 422, "validation_failed")
    assert_error(_create(owner, description=""), 422, "validation_failed")
    assert_error(_create(owner, description="x" * 1001), 422, "validation_failed")
    assert_error(_create(owner, unit_id="1"), 422, "validation_failed")
    assert db.session.scalar(sa.select(sa.func.count(Ticket.id))) == 0


def test_upload_as_wx_upload_file_and_read_the_photo_back(owner, mp_client, market):
    ticket_id = _create(owner).get_json()["id"]
    png = png_bytes(4, 4)

    resp = _upload(owner, ticket_id, png, filename="wx-tmp-123.jpg", stage="result")
    assert resp.status_code == 201, resp.get_json()
    uploaded = resp.get_json()
    assert set(uploaded) == {"id", "url"}
    assert uploaded["url"].startswith("http://") and "/api/mp/v1/ticket-photos/" in uploaded["url"]
    stored = db.session.get(TicketPhoto, uploaded["id"])
    assert (stored.stage.value, stored.content_type) == ("report", "image/png")  # the stage field is ignored

    image = mp_client.anonymous().get(_path(uploaded["url"]))  # an <image src>: no bearer token
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data == png

    assert _upload(owner, ticket_id, jpeg_bytes()).status_code == 201
    detail = owner.get(f"tickets/{ticket_id}").get_json()
    assert detail["photo_count"] == 2 and [p["stage"] for p in detail["photos"]] == ["report", "report"]
    assert [p["id"] for p in detail["events"][0]["photos"]] == [p["id"] for p in detail["photos"]]
    jpeg = mp_client.anonymous().get(_path(detail["photos"][1]["url"]))
    assert jpeg.mimetype == "image/jpeg" and jpeg.data == jpeg_bytes()


def test_upload_refusals(owner, market, app):
    ticket_id = _create(owner).get_json()["id"]
    assert_error(_upload(owner, ticket_id, b"GIF89a not a photo", filename="a.jpg"), 415, "photo_type")
    assert_error(_upload(owner, ticket_id, "纯文本".encode() * 100, filename="b.jpg"), 415, "photo_type")
    limit = app.config["TICKET_PHOTO_MAX_BYTES"]
    assert limit == 5 * 1024 * 1024
    too_big = jpeg_bytes(limit - len(jpeg_bytes()) + 1)
    assert_error(_upload(owner, ticket_id, too_big), 413, "photo_too_large")
    assert_error(_upload(owner, ticket_id, jpeg_bytes(limit + 200 * 1024)), 413, "payload_too_large")
    assert_error(owner.post(f"tickets/{ticket_id}/photos", json={"file": "x"}), 415)
    assert_error(owner.post(f"tickets/{ticket_id}/photos", data={"stage": "report"},
                            content_type="multipart/form-data"), 422, "validation_failed")
    for i in range(9):
        assert _upload(owner, ticket_id, png_bytes(rgb=(i, 0, 0))).status_code == 201
    assert_error(_upload(owner, ticket_id, png_bytes()), 409, "too_many_photos")

    other_id = _create(owner).get_json()["id"]
    assert owner.post(f"tickets/{other_id}/cancel", json={}).status_code == 200
    assert_error(_upload(owner, other_id, png_bytes()), 409, "ticket_state")
    assert db.session.scalar(sa.select(sa.func.count(TicketPhoto.id))) == 9


def test_list_filters_and_pages_newest_first(owner, staff, market):
    ids = [_create(owner, description=f"第{i}个问题").get_json()["id"] for i in range(3)]
    _staff_resolves(ids[0], staff)
    assert owner.post(f"tickets/{ids[1]}/cancel", json={"note": "不用了"}).status_code == 200

    everything = owner.get("tickets").get_json()
    assert [t["id"] for t in everything["items"]] == ids[::-1] and everything["total"] == 3
    item = everything["items"][0]
    assert set(item) == {"id", "number", "kind", "urgency", "title", "status", "unit_code", "created_at", "due_at",
                         "is_overdue", "photo_count"}
    assert item["created_at"].endswith("+00:00") and item["due_at"] > item["created_at"]
    assert [t["id"] for t in owner.get("tickets?status=open").get_json()["items"]] == [ids[2]]
    assert [t["id"] for t in owner.get("tickets?status=resolved").get_json()["items"]] == [ids[0]]
    assert [t["id"] for t in owner.get("tickets?status=closed").get_json()["items"]] == [ids[1]]
    page = owner.get("tickets?page=2&page_size=2").get_json()
    assert (page["page"], page["page_size"], page["total"], [t["id"] for t in page["items"]]) == (2, 2, 3, [ids[0]])
    assert_error(owner.get("tickets?status=everything"), 422)


def test_another_merchants_ticket_is_not_found(owner, mp_client, market):
    ticket_id = _create(owner).get_json()["id"]
    photo_id = _upload(owner, ticket_id, png_bytes()).get_json()["id"]
    stranger = mp_client.bound(market.merchants_b[0])

    assert_error(stranger.get(f"tickets/{ticket_id}"), 404, "ticket_not_found")
    assert_error(_upload(stranger, ticket_id, png_bytes()), 404, "ticket_not_found")
    assert_error(stranger.post(f"tickets/{ticket_id}/cancel", json={}), 404, "ticket_not_found")
    assert_error(stranger.post(f"tickets/{ticket_id}/reopen", json={"note": "x"}), 404, "ticket_not_found")
    assert_error(stranger.post(f"tickets/{ticket_id}/rating", json={"rating": 1}), 404, "ticket_not_found")
    assert stranger.get("tickets").get_json()["total"] == 0
    assert_error(owner.get("tickets/2147483647"), 404, "ticket_not_found")
    assert_error(owner.get("tickets/-1"), 404, "ticket_not_found")
    assert db.session.get(Ticket, ticket_id).status == TicketStatus.submitted
    assert db.session.scalar(sa.select(sa.func.count(TicketPhoto.id))) == 1 and photo_id


def test_a_tampered_or_expired_photo_url_is_not_found(owner, mp_client, app):
    ticket_id = _create(owner).get_json()["id"]
    url = _upload(owner, ticket_id, png_bytes()).get_json()["url"]
    anonymous = mp_client.anonymous()
    token = _path(url).rsplit("/", 1)[1]
    payload, _, signature = token.rpartition(".")
    forged_id = svc._serializer().dumps(999999)  # a real token format, another photo id that does not exist
    for bad in (payload + ".AAAA" + signature[4:], token[:-1], "not-a-token", forged_id, token + "x"):
        assert_error(anonymous.get(f"{API}/ticket-photos/{bad}"), 404, "photo_not_found")
    assert anonymous.get(_path(url)).status_code == 200
    app.config["TICKET_PHOTO_URL_TTL_SECONDS"] = -1  # every token is older than that
    try:
        assert_error(anonymous.get(_path(url)), 404, "photo_not_found")
    finally:
        app.config["TICKET_PHOTO_URL_TTL_SECONDS"] = 3600


def test_cancel_reopen_and_rate_follow_the_status(owner, staff):
    ticket_id = _create(owner).get_json()["id"]
    err = assert_error(owner.post(f"tickets/{ticket_id}/rating", json={"rating": 5}), 409, "ticket_state")
    assert "评价" in err["message"]
    assert_error(owner.post(f"tickets/{ticket_id}/reopen", json={"note": "没修好"}), 409, "ticket_state")

    _staff_resolves(ticket_id, staff, note="已更换阀门")
    detail = owner.get(f"tickets/{ticket_id}").get_json()
    assert (detail["status"], detail["can_cancel"], detail["can_rate"], detail["can_reopen"]) == (
        "resolved", False, True, True)
    assert detail["assignee_name"] == "repairer1"
    assert [(e["action"], e["by"]) for e in detail["events"]] == [
        ("submitted", "商户"), ("accepted", "repairer1"), ("resolved", "repairer1")]
    assert detail["events"][-1]["note"] == "已更换阀门" and detail["resolved_at"]
    assert_error(owner.post(f"tickets/{ticket_id}/cancel", json={}), 409, "ticket_state")
    assert_error(owner.post(f"tickets/{ticket_id}/reopen", json={}), 422, "validation_failed")
    assert_error(owner.post(f"tickets/{ticket_id}/reopen", json={"note": ""}), 422, "validation_failed")

    reopened = owner.post(f"tickets/{ticket_id}/reopen", json={"note": "还在漏水"})
    assert reopened.status_code == 200
    assert (reopened.get_json()["status"], reopened.get_json()["events"][-1]["note"]) == ("in_progress", "还在漏水")

    svc.resolve_ticket(ticket_id, staff["repairer1"], "重新密封")
    db.session.commit()
    assert_error(owner.post(f"tickets/{ticket_id}/rating", json={"rating": 6}), 422, "validation_failed")
    assert_error(owner.post(f"tickets/{ticket_id}/rating", json={"rating": "5"}), 422, "validation_failed")
    rated = owner.post(f"tickets/{ticket_id}/rating", json={"rating": 4, "comment": "第二次修好了"})
    assert rated.status_code == 200
    body = rated.get_json()
    assert (body["status"], body["rating"], body["rating_comment"], body["can_rate"]) == ("closed", 4, "第二次修好了", False)
    assert body["closed_at"] and body["events"][-1]["action"] == "rated"
    assert_error(owner.post(f"tickets/{ticket_id}/rating", json={"rating": 5}), 409, "ticket_state")


def test_cancel_with_an_empty_body_or_a_note(owner):
    first = _create(owner).get_json()["id"]
    second = _create(owner).get_json()["id"]
    assert owner.post(f"tickets/{first}/cancel", json={}).get_json()["status"] == "cancelled"
    body = owner.post(f"tickets/{second}/cancel", json={"note": "自己修好了"}).get_json()
    assert (body["status"], body["events"][-1]["note"], body["can_cancel"]) == ("cancelled", "自己修好了", False)
    assert_error(owner.post(f"tickets/{first}/cancel", json={}), 409, "ticket_state")


def test_openapi_documents_the_upload_as_multipart(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    upload = doc["paths"][f"{API}/tickets/{{ticket_id}}/photos"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["$ref"].endswith("/TicketPhotoUpload")
    props = doc["components"]["schemas"]["TicketPhotoUpload"]["properties"]
    assert props["file"] == {"type": "string", "format": "binary", "description": props["file"]["description"]}
    assert {"201", "404", "409", "413", "415"} <= set(upload["responses"])
    photo = doc["paths"][f"{API}/ticket-photos/{{token}}"]["get"]
    assert "security" not in photo and set(photo["responses"]["200"]["content"]) == {"image/jpeg", "image/png"}
    assert doc["paths"][f"{API}/tickets"]["post"]["responses"]["201"]


@pytest.fixture
def limited_app(fake_wechat):
    """A fresh app with rate limits on (in memory) and 2 tickets per hour per user."""
    from app import create_app
    from app.extensions import limiter
    from config import TestingConfig

    class LimitedConfig(TestingConfig):
        RATELIMIT_ENABLED = True
        RATELIMIT_STORAGE_URI = "memory://"
        TICKET_CREATE_RATE_LIMIT = "2/hour"

    fresh = create_app(LimitedConfig)
    fresh.config.update(fake_wechat.settings)
    limiter.reset()
    yield fresh
    limiter.reset()
    limiter.enabled = False


def test_filing_is_rate_limited_per_user(limited_app, fake_wechat, market):
    clients = MpClients(limited_app, fake_wechat)
    with limited_app.app_context():
        first, second = clients.bound(market.merchants_a[0]), clients.bound(market.merchants_a[1])
        assert [_create(first).status_code for _ in range(2)] == [201, 201]
        assert_error(_create(first), 429, "rate_limited")
        assert _create(second).status_code == 201  # another user on the same address is not blocked
