"""Merchant notifications: WeChat subscribe messages telling a merchant's bound users that their ticket
was accepted, resolved (please confirm) or closed, stored once per user and step and sent once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from app.extensions import db
from app.integrations.fake_wechat.wechat_api import TICKET_PROGRESS_TEMPLATE_ID
from app.models.notifications import NotificationChannel, NotificationKind, NotificationStatus
from app.models.tickets import TicketAction, TicketEvent
from app.services import notifications
from app.services import tickets as svc
from jobs.notifications import retry_merchant_notifications_job
from tests.notifications_support import all_notifications, bind, deliver_queued, messages_to, subscribe  # noqa: F401

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def _ticket(merchant, title="三号摊位水管漏水", kind="repair"):
    ticket = svc.create_ticket(merchant, None, kind, "水管接口一直滴水，地面湿滑", title=title, now=T0)
    db.session.commit()
    return ticket


def _event(ticket, action):
    return db.session.scalars(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                           TicketEvent.action == action)
                              .order_by(TicketEvent.id.desc())).first()


def _accept_and_resolve(ticket, staff=None, note="已更换水管接口"):
    svc.accept_ticket(ticket.id, staff, now=T0 + timedelta(minutes=30))
    db.session.commit()
    deliver_queued()
    svc.resolve_ticket(ticket.id, staff, note, now=T0 + timedelta(hours=1))
    db.session.commit()
    deliver_queued()


def test_resolving_sends_one_subscribe_message_to_the_bound_user(app, market, staff, subscribe):
    merchant = market.merchants_a[0]
    user = bind(merchant)
    ticket = _ticket(merchant)

    _accept_and_resolve(ticket, staff["repairer1"])

    accepted, resolved = messages_to(subscribe, user.openid)
    assert accepted["data"]["phrase3"] == {"value": "已受理"}
    assert accepted["data"]["thing4"] == {"value": "已安排repairer1处理"}
    assert resolved["touser"] == user.openid
    assert resolved["template_id"] == TICKET_PROGRESS_TEMPLATE_ID
    assert resolved["page"] == f"pages/ticket/ticket?id={ticket.id}"
    assert resolved["data"] == {
        "character_string1": {"value": ticket.number},
        "thing2": {"value": "三号摊位水管漏水"},
        "phrase3": {"value": "待确认"},
        "thing4": {"value": "已更换水管接口"},
        "time5": {"value": "2026-11-23 11:00"},
    }
    rows = all_notifications()
    assert [(r.status, r.attempts, r.channel, r.kind, r.template_key) for r in rows] == [
        (NotificationStatus.sent, 1, NotificationChannel.wechat, NotificationKind.ticket, "ticket_progress")] * 2
    assert rows[1].dedupe_key == f"ticket:{ticket.id}:event:{_event(ticket, TicketAction.resolved).id}"
    assert rows[1].sent_dt is not None and rows[1].merchant_id == merchant.id


def test_replaying_an_event_or_delivering_again_sends_nothing_more(app, market, subscribe):
    merchant = market.merchants_a[0]
    user = bind(merchant)
    ticket = _ticket(merchant)
    _accept_and_resolve(ticket)
    assert len(messages_to(subscribe, user.openid)) == 2

    assert notifications.notify_ticket_event(_event(ticket, TicketAction.resolved)) == []
    db.session.commit()
    deliver_queued()
    for row in all_notifications():
        assert notifications.deliver_notification(row.id) == "already_sent"
    db.session.commit()
    assert retry_merchant_notifications_job() == {}

    assert len(messages_to(subscribe, user.openid)) == 2
    assert len(all_notifications()) == 2


def test_every_active_binding_gets_one_and_nobody_else(app, market, subscribe):
    merchant, other = market.merchants_a[0], market.merchants_a[1]
    owner, assistant = bind(merchant), bind(merchant)
    revoked = bind(merchant, revoked=True)
    stranger = bind(other)
    ticket = _ticket(merchant)

    _accept_and_resolve(ticket)

    assert len(messages_to(subscribe, owner.openid)) == 2
    assert len(messages_to(subscribe, assistant.openid)) == 2
    assert messages_to(subscribe, revoked.openid) == [] and messages_to(subscribe, stranger.openid) == []
    assert sorted(r.wechat_user_id for r in all_notifications()) == sorted([owner.id, owner.id, assistant.id,
                                                                             assistant.id])


def test_ticket_notifications_off_stores_and_sends_nothing(app, market, subscribe):
    quiet, no_wechat = market.merchants_a[0], market.merchants_a[1]
    quiet.notify_ticket = False
    no_wechat.notify_wechat = False
    db.session.commit()
    users = [bind(quiet), bind(no_wechat)]

    for merchant in (quiet, no_wechat):
        _accept_and_resolve(_ticket(merchant))

    assert all_notifications() == []
    assert [m for u in users for m in messages_to(subscribe, u.openid)] == []


def test_user_without_subscription_is_skipped_without_retries(app, market, subscribe):
    merchant = market.merchants_a[0]
    user = bind(merchant, openid="refuse-notify-43101")
    _accept_and_resolve(_ticket(merchant))

    rows = all_notifications()
    assert [(r.status, r.attempts, r.next_dt) for r in rows] == [(NotificationStatus.skipped, 1, None)] * 2
    assert all(r.last_error.startswith("43101") for r in rows)
    assert retry_merchant_notifications_job() == {}
    assert notifications.deliver_notification(rows[0].id) == "skipped"
    assert [r.attempts for r in all_notifications()] == [1, 1]
    assert messages_to(subscribe, user.openid) == []


def test_without_a_template_the_rows_are_skipped(app, market, subscribe):
    app.config["WECHAT_TEMPLATE_TICKET_PROGRESS"] = ""
    merchant = market.merchants_a[0]
    user = bind(merchant)
    _accept_and_resolve(_ticket(merchant))

    rows = all_notifications()
    assert [(r.status, r.last_error, r.attempts) for r in rows] == [
        (NotificationStatus.skipped, "no template configured", 0)] * 2
    assert retry_merchant_notifications_job() == {}
    assert messages_to(subscribe, user.openid) == []


def test_closing_tells_the_merchant_including_the_automatic_close(app, market, staff, subscribe):
    from jobs.tickets import close_resolved_tickets_job

    merchant = market.merchants_a[0]
    user = bind(merchant)
    repair = _ticket(merchant)
    _accept_and_resolve(repair)
    suggestion = _ticket(merchant, title="建议延长周末营业时间", kind="suggestion")
    svc.close_ticket(suggestion.id, staff["admin"], "已采纳，下月起周末延长至21点", now=T0 + timedelta(hours=2))
    db.session.commit()
    deliver_queued()
    subscribe.clear_messages()

    assert close_resolved_tickets_job((T0 + timedelta(days=8)).isoformat()) == 1
    deliver_queued()
    [auto_closed] = messages_to(subscribe, user.openid)
    assert auto_closed["data"]["character_string1"] == {"value": repair.number}
    assert auto_closed["data"]["phrase3"] == {"value": "已关闭"}
    assert auto_closed["data"]["thing4"] == {"value": "7天未确认，系统自动关闭"}
    assert auto_closed["data"]["time5"] == {"value": "2026-12-01 10:00"}

    staff_closed = [r for r in all_notifications() if r.payload["character_string1"] == suggestion.number]
    assert [(r.status, r.payload["phrase3"], r.payload["thing4"]) for r in staff_closed] == [
        (NotificationStatus.sent, "已关闭", "已采纳，下月起周末延长至21点")]


def test_reassigning_an_accepted_ticket_does_not_notify_again(app, market, staff, subscribe):
    merchant = market.merchants_a[0]
    user = bind(merchant)
    ticket = _ticket(merchant)
    svc.assign_ticket(ticket.id, staff["admin"], staff["repairer1"].id)
    db.session.commit()
    svc.assign_ticket(ticket.id, staff["admin"], staff["admin"].id)
    db.session.commit()
    deliver_queued()

    [message] = messages_to(subscribe, user.openid)
    assert message["data"]["phrase3"] == {"value": "已受理"}
    assert len(all_notifications()) == 1


def test_values_are_cut_to_wechat_limits():
    assert notifications.thing("冷库压缩机噪音很大而且温度一直降不下来影响生鲜保存") == "冷库压缩机噪音很大而且温度一直降不下来…"
    assert len(notifications.thing("x" * 50)) == 20 and notifications.thing("  ") == "-"
    assert notifications.thing("第一行\n第二行") == "第一行 第二行"
    assert len(notifications.character_string("A" * 40)) == 32
    assert notifications.phrase("已处理待确认") == "已处理待确"


def test_a_long_title_is_sent_within_the_limit(app, market, subscribe):
    merchant = market.merchants_a[0]
    user = bind(merchant)
    ticket = _ticket(merchant, title="冷库压缩机噪音很大而且温度一直降不下来影响生鲜保存")
    _accept_and_resolve(ticket)
    thing2 = {m["data"]["thing2"]["value"] for m in messages_to(subscribe, user.openid)}
    assert thing2 == {"冷库压缩机噪音很大而且温度一直降不下来…"}


def test_a_failure_while_storing_never_breaks_the_ticket_action(app, market, subscribe, monkeypatch):
    merchant = market.merchants_a[0]
    bind(merchant)
    ticket = _ticket(merchant)

    def broken(*args, **kwargs):
        raise RuntimeError("template data could not be built")

    monkeypatch.setattr(notifications, "ticket_message_data", broken)
    svc.accept_ticket(ticket.id, None)
    db.session.commit()

    db.session.expire_all()
    assert svc.get_ticket(ticket.id).status.value == "in_progress"
    assert all_notifications() == []
