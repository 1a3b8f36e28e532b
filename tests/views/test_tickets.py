"""Back office tickets (工单): the zone-scoped list with overdue rows in red and an Excel export, the
ticket page with photos and the timeline, and the actions by role (accept/assign, progress with
photos, resolve, close a suggestion); the photo route; the task list's open tickets."""
import io
import re
import struct
import zlib
from datetime import timedelta

import openpyxl
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.tickets import Ticket, TicketAction, TicketEvent, TicketPhoto, TicketStatus
from app.services.tickets import add_report_photo, create_ticket, photo_path
from app.utils.dates import now_utc


def tiny_png(rgb=(200, 30, 30)) -> bytes:
    """A real 2x2 PNG (signature, IHDR, IDAT, IEND with CRCs)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def tickets(market, staff):
    """Zone A: a normal repair on A-001 with a report photo (due in 48 h), an urgent complaint filed
    6 hours ago (overdue), a suggestion; zone B: a repair on B-001."""
    now = now_utc()
    a_repair = create_ticket(market.merchants_a[0], None, "repair", "水龙头漏水，地面全是水",
                             title="水龙头漏水", unit_id=market.units_a[0].id)
    a_late = create_ticket(market.merchants_a[1], None, "complaint", "隔壁摊位占道经营", urgency="urgent",
                           now=now - timedelta(hours=6))
    a_idea = create_ticket(market.merchants_a[0], None, "suggestion", "建议增加夜间照明")
    b_repair = create_ticket(market.merchants_b[0], None, "repair", "冷库门关不严", unit_id=market.units_b[0].id)
    report = add_report_photo(a_repair, None, tiny_png((10, 120, 200)), "leak.png")
    db.session.commit()
    return {"a_repair": a_repair, "a_late": a_late, "a_idea": a_idea, "b_repair": b_repair, "report": report}


def _reload(ticket):
    db.session.expire_all()
    return db.session.get(Ticket, ticket.id)


def _rows(page):
    """{ticket id: row html} of the list page."""
    return dict(re.findall(r'<tr class="[^"]*" data-ticket="(\d+)">(.*?)</tr>', page, re.S))


def test_manager_sees_and_opens_only_own_zone_tickets(login_as, tickets, staff):
    client = login_as("manager1")
    resp = client.get("/ticketview/list/")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    rows = _rows(page)
    a_ids = {str(tickets[k].id) for k in ("a_repair", "a_late", "a_idea")}
    assert set(rows) == a_ids
    assert tickets["b_repair"].number not in page
    # Labels in Chinese; the overdue complaint's row is red, the others are not.
    assert "工单" in page and "处理时限" in page
    assert 'class="danger ticket-overdue" data-ticket="%d"' % tickets["a_late"].id in page
    assert 'class="danger ticket-overdue" data-ticket="%d"' % tickets["a_repair"].id not in page
    assert "A-001" in rows[str(tickets["a_repair"].id)] and "张记蔬菜" in rows[str(tickets["a_repair"].id)]

    assert client.get(f"/ticketview/show/{tickets['b_repair'].id}").status_code == 404
    detail = client.get(f"/ticketview/show/{tickets['a_repair'].id}").get_data(as_text=True)
    merchant = tickets["a_repair"].merchant
    assert "水龙头漏水，地面全是水" in detail and merchant.phone in detail and merchant.contact_name in detail
    assert f'src="/ticketview/photo/{tickets["report"].id}"' in detail
    assert 'id="action-assign"' in detail and "受理并指派" in detail
    # Manager2 (zone B) gets 404 for zone A's ticket and its photo.
    other = login_as("manager2")
    assert other.get(f"/ticketview/show/{tickets['a_repair'].id}").status_code == 404
    assert other.get(f"/ticketview/photo/{tickets['report'].id}").status_code == 404
    assert other.post(f"/ticketview/assign/{tickets['a_repair'].id}",
                      data={"assignee_id": str(staff["repairer1"].id)}).status_code == 404
    assert _reload(tickets["a_repair"]).status == TicketStatus.submitted


@pytest.mark.parametrize("handler", ["repairer1", "manager1"])
def test_accept_assign_progress_with_photo_and_resolve(login_as, tickets, staff, handler):
    ticket = tickets["a_repair"]
    manager = login_as("manager1")
    page = manager.get(f"/ticketview/show/{ticket.id}").get_data(as_text=True)
    # The assignee choices: active repairers and this zone's managers (not manager2).
    assert f'<option value="{staff["repairer1"].id}">' in page and "维修工" in page
    assert f'value="{staff["manager2"].id}"' not in page

    resp = manager.post(f"/ticketview/assign/{ticket.id}", data={"assignee_id": str(staff[handler].id)})
    assert resp.status_code == 302
    stored = _reload(ticket)
    assert stored.status == TicketStatus.in_progress and stored.assignee_id == staff[handler].id
    assert stored.accepted_dt is not None

    client = login_as(handler)
    rows = _rows(client.get("/ticketview/list/").get_data(as_text=True))
    if handler == "repairer1":
        assert set(rows) == {str(ticket.id)}  # only the ticket assigned to them
        assert client.get(f"/ticketview/show/{tickets['a_late'].id}").status_code == 404
    detail = client.get(f"/ticketview/show/{ticket.id}").get_data(as_text=True)
    assert 'id="action-progress"' in detail and 'id="action-resolve"' in detail
    assert ('id="action-assign"' in detail) == (handler == "manager1")

    png = tiny_png((0, 160, 60))
    resp = client.post(f"/ticketview/progress/{ticket.id}", data={
        "note": "已关闭总阀，更换阀芯中", "photos": [(io.BytesIO(png), "valve.png", "image/png")],
    }, content_type="multipart/form-data")
    assert resp.status_code == 302
    event = db.session.scalar(sa.select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.action == TicketAction.progress))
    assert event.note == "已关闭总阀，更换阀芯中" and event.actor_user_id == staff[handler].id
    photo = db.session.scalar(sa.select(TicketPhoto).where(TicketPhoto.event_id == event.id))
    assert photo.stage.value == "progress" and photo.content_type == "image/png"
    assert photo_path(photo).read_bytes() == png

    resp = client.post(f"/ticketview/resolve/{ticket.id}", data={
        "note": "阀芯已更换，不再漏水", "photos": [(io.BytesIO(tiny_png((0, 0, 200))), "done.png", "image/png")],
    }, content_type="multipart/form-data")
    assert resp.status_code == 302
    stored = _reload(ticket)
    assert stored.status == TicketStatus.resolved and stored.resolved_dt is not None
    result = db.session.scalar(sa.select(TicketPhoto).where(
        TicketPhoto.ticket_id == ticket.id, TicketPhoto.stage == "result"))
    assert result is not None

    # The timeline shows every step in order with its actor, note, status and photos.
    page = manager.get(f"/ticketview/show/{ticket.id}").get_data(as_text=True)
    timeline = page[page.index('id="ticket-timeline"'):]
    actions = re.findall(r'data-action="(\w+)"', timeline)
    assert actions == ["submitted", "assigned", "progress", "resolved"]
    assert timeline.index("已关闭总阀，更换阀芯中") < timeline.index("阀芯已更换，不再漏水")
    assert handler in timeline and "商户" in timeline and "已处理" in timeline
    assert f'src="/ticketview/photo/{photo.id}"' in timeline and f'src="/ticketview/photo/{result.id}"' in timeline
    assert 'id="action-progress"' not in page  # resolved: waiting for the merchant
    # The photos are served to the handler too.
    assert client.get(f"/ticketview/photo/{photo.id}").data == png


def test_photo_route_serves_bytes_to_allowed_users_only(login_as, tickets, staff):
    report = tickets["report"]
    for username in ("manager1", "leader", "admin"):
        resp = login_as(username).get(f"/ticketview/photo/{report.id}")
        assert resp.status_code == 200, username
        assert resp.mimetype == "image/png" and resp.data == tiny_png((10, 120, 200))
    # A repairer sees it once the ticket is theirs.
    repairer = login_as("repairer1")
    assert repairer.get(f"/ticketview/photo/{report.id}").status_code == 404
    login_as("manager1").post(f"/ticketview/assign/{tickets['a_repair'].id}",
                              data={"assignee_id": str(staff["repairer1"].id)})
    assert repairer.get(f"/ticketview/photo/{report.id}").data == tiny_png((10, 120, 200))
    assert login_as("manager2").get(f"/ticketview/photo/{report.id}").status_code == 404
    assert login_as("clerk").get(f"/ticketview/photo/{report.id}").status_code == 403
    assert login_as("manager1").get("/ticketview/photo/999999").status_code == 404
    anonymous = repairer.application.test_client()
    resp = anonymous.get(f"/ticketview/photo/{report.id}")
    assert resp.status_code == 302 and "/login/" in resp.headers["Location"]


def test_clerk_and_finance_have_no_access(login_as, tickets):
    ticket = tickets["a_repair"]
    for username in ("clerk", "finance"):
        client = login_as(username)
        for path in ("/ticketview/list/", f"/ticketview/show/{ticket.id}", "/ticketview/export/"):
            assert client.get(path).status_code == 403, (username, path)
        assert client.post(f"/ticketview/close/{ticket.id}", data={"note": "x"}).status_code == 403
        menu = client.get("/tasks/").get_data(as_text=True)
        assert "/ticketview/list/" not in menu and 'id="tickets"' not in menu
    assert _reload(ticket).status == TicketStatus.submitted


def test_leader_reads_everything_and_changes_nothing(login_as, tickets, staff):
    client = login_as("leader")
    rows = _rows(client.get("/ticketview/list/").get_data(as_text=True))
    assert set(rows) == {str(t.id) for k, t in tickets.items() if k != "report"}
    page = client.get(f"/ticketview/show/{tickets['b_repair'].id}").get_data(as_text=True)
    assert "冷库门关不严" in page and 'id="ticket-actions"' not in page
    resp = client.post(f"/ticketview/assign/{tickets['b_repair'].id}", data={"assignee_id": str(staff["repairer1"].id)})
    assert resp.status_code == 403
    assert _reload(tickets["b_repair"]).status == TicketStatus.submitted


def test_repairer_cannot_assign_or_close(login_as, tickets, staff):
    ticket = tickets["a_idea"]
    login_as("manager1").post(f"/ticketview/assign/{ticket.id}", data={"assignee_id": str(staff["repairer1"].id)})
    repairer = login_as("repairer1")
    # Someone else's ticket does not exist for them.
    resp = repairer.post(f"/ticketview/progress/{tickets['a_late'].id}", data={"note": "看看"})
    assert resp.status_code == 404
    assert repairer.post(f"/ticketview/close/{ticket.id}", data={"note": "不予采纳"}).status_code == 403
    assert repairer.post(f"/ticketview/assign/{ticket.id}",
                         data={"assignee_id": str(staff["repairer1"].id)}).status_code == 403
    assert _reload(ticket).status == TicketStatus.in_progress


def test_manager_closes_a_suggestion_with_a_reply_but_not_a_repair(login_as, tickets):
    client = login_as("manager1")
    idea, repair = tickets["a_idea"], tickets["a_repair"]
    page = client.get(f"/ticketview/show/{idea.id}").get_data(as_text=True)
    assert 'id="action-close"' in page
    assert 'id="action-close"' not in client.get(f"/ticketview/show/{repair.id}").get_data(as_text=True)
    resp = client.post(f"/ticketview/close/{idea.id}", data={"note": "已安排年底加装路灯，感谢建议"})
    assert resp.status_code == 302
    stored = _reload(idea)
    assert stored.status == TicketStatus.closed and stored.events[-1].note == "已安排年底加装路灯，感谢建议"
    # A repair cannot be closed by staff: the service refuses, the page says why, nothing changes.
    resp = client.post(f"/ticketview/close/{repair.id}", data={"note": "关闭"}, follow_redirects=True)
    assert "只有建议类工单可以直接关闭" in resp.get_data(as_text=True)
    assert _reload(repair).status == TicketStatus.submitted
    # An empty reply is refused by the form.
    resp = client.post(f"/ticketview/close/{tickets['a_idea'].id}", data={"note": ""}, follow_redirects=True)
    assert "请填写说明" in resp.get_data(as_text=True)
    new_idea = create_ticket(idea.merchant, None, "suggestion", "建议延长营业时间")
    db.session.commit()
    resp = client.post(f"/ticketview/close/{new_idea.id}", data={"note": "  "}, follow_redirects=True)
    assert _reload(new_idea).status == TicketStatus.submitted


def test_progress_refuses_a_file_that_is_not_an_image(login_as, tickets, staff):
    ticket = tickets["a_repair"]
    client = login_as("manager1")
    client.post(f"/ticketview/assign/{ticket.id}", data={"assignee_id": str(staff["manager1"].id)})
    resp = client.post(f"/ticketview/progress/{ticket.id}", data={
        "note": "现场查看", "photos": [(io.BytesIO(b"not an image at all"), "fake.png", "image/png")],
    }, content_type="multipart/form-data", follow_redirects=True)
    assert "只能上传 JPG 或 PNG 格式的照片" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(TicketPhoto.id)).where(TicketPhoto.stage == "progress")) == 0
    assert db.session.scalar(sa.select(sa.func.count(TicketEvent.id)).where(
        TicketEvent.action == TicketAction.progress)) == 0


def test_export_reads_back_zone_scoped(login_as, tickets):
    resp = login_as("manager1").get("/ticketview/export/")
    assert resp.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(resp.data))
    header, *rows = list(book.active.iter_rows(values_only=True))
    assert header[:4] == ("工单号", "类型", "紧急程度", "状态")
    numbers = {row[0] for row in rows}
    assert numbers == {tickets[k].number for k in ("a_repair", "a_late", "a_idea")}
    by_number = {row[0]: row for row in rows}
    assert by_number[tickets["a_late"].number][2] == str(tickets["a_late"].urgency.label)
    assert by_number[tickets["a_repair"].number][5] == "水龙头漏水，地面全是水"


def test_task_list_lists_open_tickets_overdue_first(login_as, tickets, staff):
    # The repair becomes urgent-free but in progress; the idea is closed and drops off the list.
    client = login_as("manager1")
    client.post(f"/ticketview/close/{tickets['a_idea'].id}", data={"note": "感谢建议"})
    page = client.get("/tasks/").get_data(as_text=True)
    card = re.search(r'id="count-tickets">\s*<div class="task-count">(\d+)</div>', page)
    assert card and card.group(1) == "2"
    section = page[page.index('id="tickets"'):page.index('id="leases"')]
    assert "1 条已超时" in section
    late, repair = tickets["a_late"], tickets["a_repair"]
    assert section.index(late.number) < section.index(repair.number)  # overdue first
    assert f'href="/ticketview/show/{late.id}">{late.number}</a>' in section
    assert tickets["b_repair"].number not in section and tickets["a_idea"].number not in section
    assert re.search(r'<tr class="danger" data-ticket="%d">' % late.id, section)

    other = login_as("manager2").get("/tasks/").get_data(as_text=True)
    assert tickets["b_repair"].number in other and late.number not in other

    client.post(f"/ticketview/assign/{repair.id}", data={"assignee_id": str(staff["repairer1"].id)})
    mine = login_as("repairer1").get("/tasks/").get_data(as_text=True)
    section = mine[mine.index('id="tickets"'):]
    assert repair.number in section and late.number not in section and "repairer1" in section


def test_admin_handles_any_zone_but_never_edits_rows_directly(login_as, tickets, staff):
    client = login_as("admin")
    ticket = tickets["b_repair"]
    page = client.get(f"/ticketview/show/{ticket.id}").get_data(as_text=True)
    assert 'id="action-assign"' in page
    # Changes go through the actions (the service), never FAB's generic add / edit / delete forms.
    for path in (f"/ticketview/edit/{ticket.id}", "/ticketview/add", f"/ticketview/delete/{ticket.id}"):
        assert client.get(path).status_code == 403, path
    resp = client.post(f"/ticketview/assign/{ticket.id}", data={"assignee_id": str(staff["repairer1"].id)})
    assert resp.status_code == 302
    stored = _reload(ticket)
    assert stored.status == TicketStatus.in_progress and stored.assignee_id == staff["repairer1"].id
    assert stored.events[-1].action == TicketAction.assigned and stored.events[-1].actor_user_id == staff["admin"].id


def test_large_photos_upload_and_oversized_ones_are_refused(login_as, tickets, staff):
    ticket = tickets["a_repair"]
    client = login_as("manager1")
    client.post(f"/ticketview/assign/{ticket.id}", data={"assignee_id": str(staff["manager1"].id)})
    big = tiny_png() + b"\x00" * (2 * 1024 * 1024)  # a 2 MB phone photo
    resp = client.post(f"/ticketview/progress/{ticket.id}", data={
        "note": "现场照片", "photos": [(io.BytesIO(big), "IMG_0001.PNG", "image/png"),
                                   (io.BytesIO(tiny_png()), "IMG_0002.PNG", "image/png")],
    }, content_type="multipart/form-data")
    assert resp.status_code == 302
    stored = db.session.scalars(sa.select(TicketPhoto).where(TicketPhoto.stage == "progress")
                                .order_by(TicketPhoto.id)).all()
    assert [p.size_bytes for p in stored] == [len(big), len(tiny_png())]
    assert photo_path(stored[0]).read_bytes() == big

    huge = tiny_png() + b"\x00" * (6 * 1024 * 1024)
    resp = client.post(f"/ticketview/progress/{ticket.id}", data={
        "note": "再拍一张", "photos": [(io.BytesIO(huge), "IMG_0003.PNG", "image/png")],
    }, content_type="multipart/form-data", follow_redirects=True)
    assert "照片不能超过 5 MB" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(TicketPhoto.id)).where(TicketPhoto.stage == "progress")) == 2
