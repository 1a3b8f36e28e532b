"""Tickets (工单): the status machine and its timeline, due dates and overdue, numbering per market and
day (also under concurrent filing), photo checks and storage, and the daily auto-close job."""
from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog
from app.models.tickets import PhotoStage, Ticket, TicketEvent, TicketPhoto, TicketStatus
from app.queues import get_queue, is_embedded
from app.services import tickets as svc
from app.services.exceptions import NotFound, ValidationFailed
from app.utils.dates import MARKET_TZ, now_utc
from tests.factories import MarketFactory, MerchantFactory, ZoneFactory
from tests.tickets_support import jpeg_bytes, png_bytes

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def _new(market, kind="repair", urgency="normal", now=T0, merchant=None, **kwargs):
    merchant = merchant or market.merchants_a[0]
    ticket = svc.create_ticket(merchant, None, kind, kwargs.pop("description", "水龙头漏水，地面湿滑"),
                               urgency=urgency, now=now, **kwargs)
    db.session.commit()
    return ticket


def _actions(ticket):
    rows = db.session.execute(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                              .order_by(TicketEvent.id)).scalars()
    return [(e.action.value, e.status_after.value) for e in rows]


# -- due dates, overdue -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind, urgency, hours", [
    ("repair", "urgent", 4), ("repair", "normal", 48), ("complaint", "urgent", 4), ("complaint", "normal", 48),
    ("suggestion", "normal", 7 * 24), ("suggestion", "urgent", 7 * 24),
])
def test_due_time_depends_on_kind_and_urgency(market, kind, urgency, hours):
    assert svc.ticket_due_dt(kind, urgency, T0) == T0 + timedelta(hours=hours)
    ticket = _new(market, kind, urgency)
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).due_dt == T0 + timedelta(hours=hours)


def test_overdue_means_open_and_past_due(market):
    urgent = _new(market, urgency="urgent")
    normal = _new(market)
    resolved = _new(market, urgency="urgent")
    svc.accept_ticket(resolved.id, None)
    svc.resolve_ticket(resolved.id, None, "已更换水龙头", now=T0 + timedelta(hours=1))
    db.session.commit()
    later = T0 + timedelta(hours=5)

    overdue = set(db.session.scalars(sa.select(Ticket.id).where(svc.overdue_clause(later))))
    open_ids = set(db.session.scalars(sa.select(Ticket.id).where(svc.open_tickets_clause(later))))

    assert overdue == {urgent.id}
    assert open_ids == {urgent.id, normal.id}
    assert urgent.is_overdue_at(later) and not normal.is_overdue_at(later) and not resolved.is_overdue_at(later)
    assert resolved.is_on_time is True
    assert set(db.session.scalars(sa.select(Ticket.id).where(svc.overdue_clause(T0 + timedelta(hours=49))))) == {
        urgent.id, normal.id}


# -- numbering ---------------------------------------------------------------------------------------


def test_numbers_run_per_market_and_shanghai_day(market):
    first, second = _new(market), _new(market)
    # 17:00 UTC is already the next day in Shanghai
    next_day = _new(market, now=datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc))
    other_market = MarketFactory(code="HX", name="海鲜市场")
    other_merchant = MerchantFactory(zone=ZoneFactory(market=other_market), market=other_market)
    other = _new(market, merchant=other_merchant)

    assert [first.number, second.number, next_day.number] == ["JJ-T261123-0001", "JJ-T261123-0002", "JJ-T261124-0001"]
    assert other.number == "HX-T261123-0001"


def test_a_number_taken_meanwhile_is_skipped_and_audited_once(market, monkeypatch):
    """Another filing commits the same number between our look-up and our insert: we take the next one."""
    taken = _new(market)
    real = svc._next_ticket_number
    calls = []

    def stale_first(market_id, prefix):
        calls.append(prefix)
        return taken.number if len(calls) == 1 else real(market_id, prefix)

    monkeypatch.setattr(svc, "_next_ticket_number", stale_first)
    ticket = _new(market)

    assert ticket.number == "JJ-T261123-0002" and len(calls) == 2
    inserts = db.session.scalars(sa.select(AuditLog).where(AuditLog.table_name == "tickets",
                                                            AuditLog.action == "insert")).all()
    assert sorted(a.row_id for a in inserts) == sorted([str(taken.id), str(ticket.id)])


@pytest.mark.skipif("postgresql" not in __import__("os").environ.get("DATABASE_URL", ""),
                    reason="concurrent writers need PostgreSQL")
def test_concurrent_filings_get_distinct_numbers(app, market):
    merchant_id = market.merchants_a[0].id
    barrier = threading.Barrier(6)
    errors = []

    def file_one():
        with app.app_context():
            try:
                from app.models import Merchant

                merchant = db.session.get(Merchant, merchant_id)
                barrier.wait()
                svc.create_ticket(merchant, None, "repair", "同时报修", now=T0)
                db.session.commit()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=file_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    numbers = sorted(db.session.scalars(sa.select(Ticket.number)))
    assert numbers == [f"JJ-T261123-{i:04d}" for i in range(1, 7)]


# -- creation ---------------------------------------------------------------------------------------


def test_create_takes_the_units_zone_and_refuses_another_merchants_unit(market):
    merchant = market.merchants_a[0]
    ticket = _new(market, unit_id=market.units_a[0].id, title="  漏水 ")
    assert (ticket.zone_id, ticket.unit_id, ticket.title, ticket.status) == (
        market.zone_a.id, market.units_a[0].id, "漏水", TicketStatus.submitted)
    assert _actions(ticket) == [("submitted", "submitted")]

    with pytest.raises(ValidationFailed) as refused:
        svc.create_ticket(merchant, None, "repair", "别人的摊位", unit_id=market.units_b[0].id)
    assert refused.value.code == "unit_not_own"
    with pytest.raises(ValidationFailed):
        svc.create_ticket(merchant, None, "repair", "   ")
    with pytest.raises(ValidationFailed):
        svc.create_ticket(merchant, None, "praise", "不存在的类型")


def test_title_defaults_to_the_start_of_the_description(market):
    ticket = _new(market, description="B区通道灯不亮，晚上看不清路，请尽快修理，谢谢！这里再多写一些字让它超过三十个字\n第二行")
    assert ticket.title == "B区通道灯不亮，晚上看不清路，请尽快修理，谢谢！这里再多写一些字让它"[:30]
    assert "\n" not in ticket.title


# -- the status machine ------------------------------------------------------------------------------


def test_repair_goes_through_accept_resolve_reopen_resolve_rate(market, staff):
    manager, repairer = staff["manager1"], staff["repairer1"]
    ticket = _new(market, unit_id=market.units_a[0].id)

    svc.accept_ticket(ticket.id, manager, assignee_id=repairer.id, now=T0 + timedelta(minutes=10))
    svc.add_progress(ticket.id, repairer, "已到现场，等配件", photos=[(jpeg_bytes(), "p.jpg", "image/jpeg")],
                     now=T0 + timedelta(minutes=30))
    svc.resolve_ticket(ticket.id, repairer, "已更换阀门", photos=[(png_bytes(), "r.png", "image/png")],
                       now=T0 + timedelta(hours=1))
    db.session.commit()
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.resolved, repairer.id)
    assert ticket.accepted_dt == T0 + timedelta(minutes=10) and ticket.resolved_dt == T0 + timedelta(hours=1)

    with pytest.raises(ValidationFailed):
        svc.reopen_ticket(ticket.id, None, "  ")
    svc.reopen_ticket(ticket.id, None, "还在漏")
    assert ticket.status == TicketStatus.in_progress and ticket.resolved_dt is None
    svc.resolve_ticket(ticket.id, repairer, "重新密封")
    svc.rate_ticket(ticket.id, None, 5, "师傅很及时")
    db.session.commit()

    db.session.expire_all()
    ticket = db.session.get(Ticket, ticket.id)
    assert (ticket.status, ticket.rating, ticket.rating_comment) == (TicketStatus.closed, 5, "师傅很及时")
    assert ticket.closed_dt is not None
    assert _actions(ticket) == [
        ("submitted", "submitted"), ("accepted", "in_progress"), ("progress", "in_progress"),
        ("resolved", "resolved"), ("reopened", "in_progress"), ("resolved", "resolved"), ("rated", "closed"),
    ]
    events = {}
    for event in ticket.events:
        events.setdefault(event.action.value, event)  # the first of each action
    assert events["accepted"].actor_user_id == manager.id and events["accepted"].note == "指派给 repairer1"
    assert [p.stage for p in events["progress"].photos] == [PhotoStage.progress]
    assert [p.stage for p in events["resolved"].photos] == [PhotoStage.result]
    changes = db.session.scalars(sa.select(AuditLog).where(AuditLog.table_name == "tickets",
                                                            AuditLog.row_id == str(ticket.id),
                                                            AuditLog.action == "update")).all()
    assert any(a.after.get("status") == "closed" and a.after.get("rating") == 5 for a in changes)


@pytest.mark.parametrize("setup, action", [
    ("submitted", lambda t, u: svc.resolve_ticket(t, u, "x")),
    ("submitted", lambda t, u: svc.add_progress(t, u, "x")),
    ("submitted", lambda t, u: svc.rate_ticket(t, None, 5)),
    ("submitted", lambda t, u: svc.reopen_ticket(t, None, "x")),
    ("in_progress", lambda t, u: svc.accept_ticket(t, u)),
    ("in_progress", lambda t, u: svc.rate_ticket(t, None, 4)),
    ("resolved", lambda t, u: svc.cancel_ticket(t, None)),
    ("resolved", lambda t, u: svc.assign_ticket(t, u, u.id)),
    ("cancelled", lambda t, u: svc.accept_ticket(t, u)),
    ("cancelled", lambda t, u: svc.add_photo(db.session.get(Ticket, t), "report", jpeg_bytes(), "a.jpg", "image/jpeg")),
])
def test_steps_the_status_does_not_allow_are_refused(market, staff, setup, action):
    manager = staff["manager1"]
    ticket = _new(market)
    if setup in ("in_progress", "resolved"):
        svc.accept_ticket(ticket.id, manager)
    if setup == "resolved":
        svc.resolve_ticket(ticket.id, manager, "好了")
    if setup == "cancelled":
        svc.cancel_ticket(ticket.id, None, "不用修了")
    db.session.commit()
    before = _actions(ticket)

    with pytest.raises(svc.TicketStateError) as refused:
        action(ticket.id, manager)

    db.session.rollback()
    assert refused.value.code == "ticket_state" and refused.value.http_status == 409
    assert db.session.get(Ticket, ticket.id).status.value == setup and _actions(ticket) == before


def test_assign_accepts_a_submitted_ticket_and_only_to_handling_staff(market, staff):
    ticket = _new(market)
    with pytest.raises(ValidationFailed):
        svc.assign_ticket(ticket.id, staff["admin"], staff["clerk"].id)
    svc.assign_ticket(ticket.id, staff["admin"], staff["repairer1"].id)
    db.session.commit()
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.in_progress, staff["repairer1"].id)
    assert ticket.accepted_dt is not None
    svc.assign_ticket(ticket.id, staff["admin"], str(staff["manager1"].id))  # as a form posts it
    assert _actions(ticket)[-2:] == [("assigned", "in_progress"), ("assigned", "in_progress")]
    names = {u.username for u in svc.assignable_users(market.zone_a.id)}
    assert {"admin", "repairer1", "manager1"} <= names and not names & {"manager2", "clerk", "leader"}


def test_merchant_cancels_an_open_ticket(market, staff):
    ticket = _new(market)
    svc.accept_ticket(ticket.id, staff["manager1"])
    svc.cancel_ticket(ticket.id, None, "自己修好了")
    db.session.commit()
    assert ticket.status == TicketStatus.cancelled and ticket.closed_dt is not None
    assert _actions(ticket)[-1] == ("cancelled", "cancelled")


def test_staff_close_a_suggestion_with_a_reply_but_not_a_repair(market, staff):
    suggestion = _new(market, "suggestion", description="希望增加停车位")
    repair = _new(market)
    svc.close_ticket(suggestion.id, staff["manager1"], "已列入明年计划")
    with pytest.raises(svc.TicketStateError):
        svc.close_ticket(repair.id, staff["manager1"], "关闭")
    db.session.commit()
    assert suggestion.status == TicketStatus.closed
    assert _actions(suggestion)[-1] == ("closed", "closed")
    assert suggestion.events[-1].note == "已列入明年计划"


def test_rating_must_be_one_to_five(market, staff):
    ticket = _new(market)
    svc.accept_ticket(ticket.id, staff["manager1"])
    svc.resolve_ticket(ticket.id, staff["manager1"], "好了")
    for bad in (0, 6, "5", True):
        with pytest.raises(ValidationFailed):
            svc.rate_ticket(ticket.id, None, bad)
    assert ticket.status == TicketStatus.resolved


def test_merchant_tickets_filters_and_hides_other_merchants(market, staff):
    a1, a2 = market.merchants_a
    open_one, done = _new(market, merchant=a1), _new(market, merchant=a1)
    svc.cancel_ticket(done.id, None)
    _new(market, merchant=a2)
    db.session.commit()
    ids = lambda status=None: list(db.session.scalars(svc.merchant_tickets(a1.id, status)).all())  # noqa: E731
    assert [t.id for t in ids()] == [done.id, open_one.id]
    assert [t.id for t in ids("open")] == [open_one.id]
    assert [t.id for t in ids("closed")] == [done.id]
    assert ids("resolved") == []
    with pytest.raises(NotFound):
        svc.merchant_ticket(a2.id, open_one.id)


# -- photos ------------------------------------------------------------------------------------------


def test_a_png_named_jpg_is_stored_as_png_with_its_hash(market):
    ticket = _new(market)
    data = png_bytes(3, 3)
    photo = svc.add_report_photo(ticket.id, None, data, "IMG_0001.jpg", "image/jpeg")
    db.session.commit()

    stored = db.session.get(TicketPhoto, photo.id)
    assert stored.content_type == "image/png" and stored.path.endswith(".png")
    assert stored.size_bytes == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.stage == PhotoStage.report and stored.event.action.value == "submitted"
    path = svc.photo_path(stored)
    assert path.read_bytes() == data
    assert str(path).startswith(str(svc.uploads_dir().resolve()))


def test_a_text_file_named_jpg_is_refused(market):
    ticket = _new(market)
    with pytest.raises(svc.PhotoTypeRefused) as refused:
        svc.add_report_photo(ticket.id, None, "这不是图片".encode() * 10, "photo.jpg", "image/jpeg")
    assert refused.value.http_status == 415
    assert db.session.scalar(sa.select(sa.func.count(TicketPhoto.id))) == 0


def test_a_photo_over_5_mb_is_refused(market):
    ticket = _new(market)
    limit = 5 * 1024 * 1024
    exact = svc.add_report_photo(ticket.id, None, jpeg_bytes(limit - len(jpeg_bytes())), "big.jpg")
    assert exact.size_bytes == limit
    with pytest.raises(svc.PhotoTooLarge) as refused:
        svc.add_report_photo(ticket.id, None, jpeg_bytes(limit - len(jpeg_bytes()) + 1), "bigger.jpg")
    assert refused.value.http_status == 413


def test_the_tenth_photo_of_a_stage_is_refused(market, staff):
    ticket = _new(market)
    for i in range(9):
        svc.add_report_photo(ticket.id, None, png_bytes(rgb=(i, i, i)), f"{i}.png")
    with pytest.raises(svc.TooManyPhotos) as refused:
        svc.add_report_photo(ticket.id, None, png_bytes(), "10.png")
    assert refused.value.http_status == 409
    svc.accept_ticket(ticket.id, staff["manager1"])
    svc.add_progress(ticket.id, staff["manager1"], "进度照片另算", photos=[(jpeg_bytes(), "p.jpg", None)])
    db.session.commit()
    counts = dict(db.session.execute(sa.select(TicketPhoto.stage, sa.func.count()).group_by(TicketPhoto.stage)).all())
    assert counts == {PhotoStage.report: 9, PhotoStage.progress: 1}


def _stored_files():
    root = svc.uploads_dir() / "tickets"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_staff_step_with_one_bad_photo_stores_none(market, staff):
    ticket = _new(market)
    svc.accept_ticket(ticket.id, staff["manager1"])
    db.session.commit()
    before = _stored_files()
    with pytest.raises(svc.PhotoTypeRefused):
        svc.add_progress(ticket.id, staff["manager1"], "进度",
                         photos=[(jpeg_bytes(), "ok.jpg", None), (b"%PDF-1.7 not a photo", "scan.jpg", None)])
    with pytest.raises(svc.TooManyPhotos):
        svc.resolve_ticket(ticket.id, staff["manager1"], "好了", photos=[(png_bytes(), f"{i}.png", None)
                                                                        for i in range(10)])
    db.session.rollback()
    assert _stored_files() == before
    assert _actions(ticket) == [("submitted", "submitted"), ("accepted", "in_progress")]


def test_a_rolled_back_upload_leaves_no_file(market):
    ticket = _new(market)
    kept = svc.add_report_photo(ticket.id, None, png_bytes(), "kept.png")
    db.session.commit()
    dropped = svc.add_report_photo(ticket.id, None, jpeg_bytes(), "dropped.jpg")
    dropped_path = svc.photo_path(dropped)
    assert dropped_path.exists()
    db.session.rollback()
    assert not dropped_path.exists()
    assert svc.photo_path(db.session.get(TicketPhoto, kept.id)).read_bytes() == png_bytes()


def test_photo_tokens_are_signed_and_expire(app, market):
    ticket = _new(market)
    photo = svc.add_report_photo(ticket.id, None, jpeg_bytes(), "a.jpg")
    db.session.commit()
    token = svc.photo_token(photo)
    assert svc.photo_from_token(token).id == photo.id
    assert svc.photo_url(photo).endswith(f"/api/mp/v1/ticket-photos/{token}")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(NotFound):
        svc.photo_from_token(tampered)
    with pytest.raises(NotFound):
        svc.photo_from_token(token, max_age=-1)


# -- the daily auto-close job ------------------------------------------------------------------------


def _run(func, *args):
    from rq import SimpleWorker

    from jobs.tickets import QUEUE

    queue = get_queue(QUEUE)
    job = queue.enqueue(func, *args)
    if not is_embedded():
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    return job


def test_daily_job_closes_tickets_resolved_over_7_days_ago(market, staff):
    from jobs.tickets import close_resolved_tickets_job

    now = now_utc()
    old, recent, open_one = _new(market), _new(market), _new(market)
    for ticket, resolved_at in ((old, now - timedelta(days=7, minutes=1)), (recent, now - timedelta(days=6))):
        svc.accept_ticket(ticket.id, staff["manager1"])
        svc.resolve_ticket(ticket.id, staff["manager1"], "已处理", now=resolved_at)
    db.session.commit()

    job = _run(close_resolved_tickets_job)
    assert job.get_status() == "finished" and job.return_value() == 1
    db.session.expire_all()
    statuses = {t.id: t.status for t in db.session.scalars(sa.select(Ticket))}
    assert statuses == {old.id: TicketStatus.closed, recent.id: TicketStatus.resolved,
                        open_one.id: TicketStatus.submitted}
    last = db.session.get(Ticket, old.id).events[-1]
    assert (last.action.value, last.actor_user_id, svc.event_actor_name(last)) == ("closed", None, "系统")

    again = _run(close_resolved_tickets_job)
    assert again.return_value() == 0


def test_schedule_lists_the_auto_close():
    from jobs.schedule import SCHEDULE

    entries = {path: expression for path, _queue, expression, _ in SCHEDULE}
    assert entries["jobs.tickets.close_resolved_tickets_job"] == "30 2 * * *"


def test_shanghai_day_of_the_number_prefix():
    late_utc = datetime(2026, 12, 31, 16, 30, tzinfo=timezone.utc)
    assert late_utc.astimezone(MARKET_TZ).day == 1
    assert svc.ticket_number_prefix("JJ", late_utc) == "JJ-T270101-"
