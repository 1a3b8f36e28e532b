"""Merchant notifications (商户通知): tell a merchant's WeChat users, by subscribe message, how their ticket moves on.

The rules (docs/notifications.md):

* notify_ticket_event() stores one row per WeChat user actively bound to the ticket's merchant, when
  the merchant's settings allow it (notify_wechat and notify_ticket, both on the merchant). It is
  idempotent on (wechat_user_id, dedupe_key), flushes, never commits, and never raises into the
  ticket action: a failure is logged and the ticket change goes on.
* Nothing is sent while the ticket action runs: the ids wait in the session and only after the commit
  a delivery job is queued (jobs/notifications.py; in the embedded mode a background thread).
* deliver_notification() locks the row, sends it once and records the outcome: sent; skipped (no
  template configured, 43101 the user has no subscription left, 40003 not a user of this
  mini-program: nothing to retry); pending with the error and a backoff (WeChat unreachable, 45011
  minute quota) until MAX_ATTEMPTS, then failed; failed at once for any other errcode.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from app.integrations.wechat import WeChatAPIError, WeChatErrcode, WeChatMiniProgram, WeChatUnavailable
from app.models.merchants import Merchant
from app.models.notifications import (
    MerchantNotification,
    NotificationChannel,
    NotificationKind,
    NotificationStatus,
)
from app.models.tickets import Ticket, TicketAction, TicketEvent
from app.models.wechat_users import MerchantBinding, WeChatUser
from app.utils import after_commit
from app.utils.dates import format_local, now_utc

log = logging.getLogger(__name__)

#: The subscribe-message template of ticket progress, and the config key holding its WeChat template id.
TICKET_TEMPLATE_KEY = "ticket_progress"
TEMPLATE_CONFIG_KEYS = {TICKET_TEMPLATE_KEY: "WECHAT_TEMPLATE_TICKET_PROGRESS"}
#: Reason stored on rows skipped because the template id is not set.
NO_TEMPLATE = "no template configured"
#: Attempts before a notification is marked failed (given up).
MAX_ATTEMPTS = 6
#: Backoff after the n-th failed attempt: BACKOFF_BASE * 2**(n-1), at most BACKOFF_MAX.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
#: Notifications delivered per retry run.
RETRY_BATCH = 50
#: errcodes after which the message is not retried and not an error: the user cannot receive it.
SKIP_ERRCODES = {WeChatErrcode.USER_REFUSED_MESSAGE, WeChatErrcode.INVALID_OPENID}
#: errcodes worth another attempt later.
RETRY_ERRCODES = {WeChatErrcode.RATE_LIMITED}
_SESSION_KEY = "merchant_notifications_to_deliver"

#: WeChat's limits on subscribe-message values, in characters.
THING_MAX, CHARACTER_STRING_MAX, PHRASE_MAX = 20, 32, 5
#: The mini-program page a ticket message opens.
TICKET_PAGE = "pages/ticket/ticket?id={id}"

#: Ticket steps the merchant is told about: (phrase3 status, default thing4 note).
TICKET_EVENT_TEXT = {
    TicketAction.accepted: ("已受理", "工作人员已受理"),
    TicketAction.assigned: ("已受理", "工作人员已受理"),
    TicketAction.resolved: ("待确认", "已处理，请确认是否解决"),
    TicketAction.closed: ("已关闭", "工单已关闭"),
}
AUTO_CLOSE_NOTE = "7天未确认，系统自动关闭"


# --------------------------------------------------------------------------- template values


def _clean(text) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip()


def thing(text, fallback: str = "-") -> str:
    """A "thing" value: at most 20 characters (cut with an ellipsis), never empty."""
    text = _clean(text) or fallback
    return text if len(text) <= THING_MAX else text[:THING_MAX - 1] + "…"


def character_string(text) -> str:
    """A "character_string" value: at most 32 characters."""
    return (_clean(text) or "-")[:CHARACTER_STRING_MAX]


def phrase(text) -> str:
    """A "phrase" value: at most 5 characters."""
    return _clean(text)[:PHRASE_MAX]


def ticket_message_data(ticket: Ticket, event: TicketEvent) -> dict[str, str]:
    """The ticket_progress template data for a step: number, title, status, note and time (Asia/Shanghai)."""
    status, note = TICKET_EVENT_TEXT[event.action]
    if event.action in (TicketAction.accepted, TicketAction.assigned):
        from flask_appbuilder.security.sqla.models import User

        from app.services.tickets import staff_name

        assignee = db.session.get(User, ticket.assignee_id) if ticket.assignee_id is not None else None
        name = staff_name(assignee) if assignee is not None else ""
        note = f"已安排{name}处理" if name else note
    elif event.action == TicketAction.resolved:
        note = event.note or note
    elif event.action == TicketAction.closed:
        note = event.note if event.actor_user_id is not None else AUTO_CLOSE_NOTE
    return {
        "character_string1": character_string(ticket.number),
        "thing2": thing(ticket.title),
        "phrase3": phrase(status),
        "thing4": thing(note),
        "time5": format_local(event.created_dt or now_utc(), "%Y-%m-%d %H:%M"),
    }


# --------------------------------------------------------------------------- storing


def subscribe_templates() -> dict[str, str]:
    """The configured subscribe-message templates by key, for the mini-program's wx.requestSubscribeMessage."""
    return {key: template_id(key) for key in TEMPLATE_CONFIG_KEYS if template_id(key)}


def template_id(template_key: str) -> str:
    """The WeChat template id configured for a template key ("" when not set)."""
    return str(current_app.config.get(TEMPLATE_CONFIG_KEYS.get(template_key, ""), "") or "").strip()


def _is_first_acceptance(event: TicketEvent) -> bool:
    """An assignment tells the merchant only when it is the one that accepted the ticket."""
    earlier = db.session.scalar(
        sa.select(sa.func.count(TicketEvent.id)).where(
            TicketEvent.ticket_id == event.ticket_id, TicketEvent.id < event.id,
            TicketEvent.action.in_((TicketAction.accepted, TicketAction.assigned)))
    )
    return not earlier


def ticket_recipients(merchant: Merchant) -> list[MerchantBinding]:
    """Active bindings of the merchant whose users get its ticket messages (none when its settings say no)."""
    if not (merchant.notify_wechat and merchant.notify_ticket):
        return []
    return list(db.session.scalars(
        sa.select(MerchantBinding).where(MerchantBinding.merchant_id == merchant.id,
                                         MerchantBinding.revoked_dt.is_(None))
        .order_by(MerchantBinding.id)
    ))


def _store(merchant: Merchant, wechat_user_id: int, kind: NotificationKind, template_key: str,
           dedupe_key: str, payload: dict, page: str | None) -> MerchantNotification | None:
    """Insert one notification unless the recipient already has this dedupe_key (None then)."""
    exists = db.session.scalar(sa.select(MerchantNotification.id).where(
        MerchantNotification.wechat_user_id == wechat_user_id, MerchantNotification.dedupe_key == dedupe_key))
    if exists is not None:
        return None
    configured = bool(template_id(template_key))
    row = MerchantNotification(
        market_id=merchant.market_id, merchant_id=merchant.id, wechat_user_id=wechat_user_id,
        channel=NotificationChannel.wechat, kind=kind, template_key=template_key, dedupe_key=dedupe_key,
        payload=payload, page=page, attempts=0, created_dt=now_utc(),
        status=NotificationStatus.pending if configured else NotificationStatus.skipped,
        last_error=None if configured else NO_TEMPLATE,
    )
    try:
        with db.session.begin_nested():  # a concurrent insert of the same key loses only this row
            db.session.add(row)
    except IntegrityError:
        return None
    return row


def notify_ticket_event(event: TicketEvent) -> list[MerchantNotification]:
    """Store the WeChat messages telling the merchant's bound users about a ticket step (accepted,
    resolved, closed); one per user and step, never twice. Logs instead of raising."""
    try:
        if event.action not in TICKET_EVENT_TEXT:
            return []
        if event.id is None:
            db.session.flush()
        if event.action == TicketAction.assigned and not _is_first_acceptance(event):
            return []
        ticket = event.ticket or db.session.get(Ticket, event.ticket_id)
        merchant = db.session.get(Merchant, ticket.merchant_id)
        recipients = ticket_recipients(merchant)
        if not recipients:
            return []
        payload = ticket_message_data(ticket, event)
        dedupe_key = f"ticket:{ticket.id}:event:{event.id}"
        page = TICKET_PAGE.format(id=ticket.id)
        rows = []
        with db.session.begin_nested():
            for binding in recipients:
                row = _store(merchant, binding.wechat_user_id, NotificationKind.ticket, TICKET_TEMPLATE_KEY,
                             dedupe_key, payload, page)
                if row is not None:
                    rows.append(row)
    except Exception:
        log.exception("could not store the merchant notifications of ticket event %s", getattr(event, "id", None))
        return []
    for row in rows:
        if row.status == NotificationStatus.pending:
            after_commit.note(db.session, _SESSION_KEY, row.id)
    return rows


# --------------------------------------------------------------------------- delivery


def _backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: 1, 2, 4, ... minutes, at most an hour."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def _mini_program_client() -> WeChatMiniProgram:
    from app.services.mp_auth import mini_program_client

    return mini_program_client()


def deliver_notification(notification_id: int, client: WeChatMiniProgram | None = None,
                         now: datetime | None = None) -> str:
    """Send one merchant notification and record the outcome; one already sent, skipped or failed is not sent again.

    Returns "sent", "already_sent", "skipped", "failed", "gave_up", "missing", "busy" (another worker
    is sending it), "rate_limited", "unavailable" or "error:<errcode>"."""
    row = db.session.scalar(sa.select(MerchantNotification).where(MerchantNotification.id == notification_id)
                            .with_for_update().execution_options(populate_existing=True))
    if row is None:
        return "missing"
    if row.status == NotificationStatus.sent:
        return "already_sent"
    if row.status in (NotificationStatus.skipped, NotificationStatus.failed):
        return row.status.value
    if row.attempts >= MAX_ATTEMPTS:
        row.status, row.next_dt = NotificationStatus.failed, None
        db.session.flush()
        return "gave_up"
    template = template_id(row.template_key)
    if not template:
        row.status, row.last_error, row.next_dt = NotificationStatus.skipped, NO_TEMPLATE, None
        db.session.flush()
        return "skipped"
    now = now or now_utc()
    # Claim this attempt with a conditional UPDATE: on a database without row locks (SQLite) a second
    # deliverer finds the attempt count moved on (or waits for the write lock) and sends nothing.
    seen = row.attempts
    claimed = db.session.execute(
        sa.update(MerchantNotification)
        .where(MerchantNotification.id == row.id, MerchantNotification.status == NotificationStatus.pending,
               MerchantNotification.attempts == seen)
        .values(attempts=seen + 1).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return "busy"
    set_committed_value(row, "attempts", seen + 1)
    openid = db.session.scalar(sa.select(WeChatUser.openid).where(WeChatUser.id == row.wechat_user_id))
    try:
        (client or _mini_program_client()).send_subscribe_message(openid, template, row.payload, row.page)
    except WeChatAPIError as exc:
        error = f"{exc.errcode} {exc.errmsg}"
        if exc.errcode in SKIP_ERRCODES:
            return _finish(row, NotificationStatus.skipped, error, "skipped")
        if exc.errcode not in RETRY_ERRCODES:
            log.error("merchant notification %s refused by WeChat: %s", row.id, error)
            return _finish(row, NotificationStatus.failed, error, f"error:{exc.errcode}")
        outcome = "rate_limited"
    except WeChatUnavailable as exc:
        outcome, error = "unavailable", f"无法连接微信：{exc}"
    else:
        row.status, row.sent_dt, row.last_error, row.next_dt = NotificationStatus.sent, now, None, None
        db.session.flush()
        return "sent"
    if row.attempts >= MAX_ATTEMPTS:
        log.error("merchant notification %s not delivered after %s attempts: %s", row.id, row.attempts, error)
        _finish(row, NotificationStatus.failed, error, outcome)
        return outcome
    row.last_error, row.next_dt = error[:300], now + _backoff(row.attempts)
    log.warning("merchant notification %s not delivered (attempt %s): %s", row.id, row.attempts, error)
    db.session.flush()
    return outcome


def _finish(row: MerchantNotification, status: NotificationStatus, error: str, outcome: str) -> str:
    """Record a final outcome (skipped or failed) with its reason; returns outcome."""
    row.status, row.last_error, row.next_dt = status, error[:300], None
    db.session.flush()
    return outcome


def pending_notifications(now: datetime | None = None, limit: int = RETRY_BATCH) -> list[int]:
    """Ids of notifications not yet sent whose backoff has passed, oldest first."""
    now = now or now_utc()
    return list(db.session.scalars(
        sa.select(MerchantNotification.id).where(
            MerchantNotification.status == NotificationStatus.pending,
            MerchantNotification.attempts < MAX_ATTEMPTS,
            sa.or_(MerchantNotification.next_dt.is_(None), MerchantNotification.next_dt <= now),
        ).order_by(MerchantNotification.id).limit(limit)
    ))


# --------------------------------------------------------------------------- after commit


def _queue_deliveries(ids: list[int]) -> None:
    """Queue the delivery of the notifications stored in the transaction that just committed."""
    from jobs.notifications import enqueue_deliveries

    enqueue_deliveries(ids)


after_commit.on_commit(_SESSION_KEY, _queue_deliveries, "merchant notifications")
