"""The Finance alerts page: red until acknowledged, delivery status, link to the cause, Finance and Admin only."""
from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models.alerts import FinanceAlert
from app.services import wechat_payments
from app.models.alerts import DeliveryStatus
from tests.alerts_support import deliver_queued, robot  # noqa: F401
from tests.wechatpay_support import live_server, make_bill, wxpay  # noqa: F401


def _short_payment(fake, merchant, amount_fen):
    bill = make_bill(merchant, amount_fen)
    order, _ = wechat_payments.create_pay_order(merchant, "o-alert-view", [bill.id])
    db.session.commit()
    assert fake.pay(order.out_trade_no, tamper="amount_short")["status_code"] == 204
    db.session.expire_all()
    return order


def test_finance_sees_the_alert_in_red_and_acknowledges_it(login_as, market, fake_wechat, wxpay):
    order = _short_payment(fake_wechat, market.merchants_a[0], 8800)
    alert_id = db.session.scalar(sa.select(FinanceAlert.id))
    finance = login_as("finance")

    page = finance.get("/finance/alerts/").get_data(as_text=True)
    assert f'<tr class="suspicious" data-alert-id="{alert_id}">' in page
    assert order.out_trade_no in page and "¥87.99（8799 分）" in page
    assert 'href="/wechatpay/notifications/?verdict=suspicious"' in page
    notifications = finance.get("/wechatpay/notifications/").get_data(as_text=True)
    assert 'id="finance-alert-banner"' in notifications

    resp = finance.post(f"/finance/alerts/{alert_id}/acknowledge")

    assert resp.status_code == 302
    db.session.expire_all()
    alert = db.session.get(FinanceAlert, alert_id)
    assert alert.acknowledged_dt is not None and alert.acknowledged_by.username == "finance"
    assert f'data-alert-id="{alert_id}"' not in finance.get("/finance/alerts/").get_data(as_text=True)
    everything = finance.get("/finance/alerts/?all=1").get_data(as_text=True)
    assert f'<tr class="acknowledged" data-alert-id="{alert_id}">' in everything
    for path in ("/wechatpay/notifications/", "/wechatpay/orders/", "/wechatpay/reconciliation/"):
        assert 'id="finance-alert-banner"' not in finance.get(path).get_data(as_text=True)


def test_admin_sees_the_page_and_the_menu(login_as, market):
    admin = login_as("admin")
    page = admin.get("/finance/alerts/")
    assert page.status_code == 200 and 'id="finance-alerts"' in page.get_data(as_text=True)
    assert "/finance/alerts/" in admin.get("/wechatpay/orders/").get_data(as_text=True)


def test_other_roles_cannot_open_or_acknowledge(login_as, market, fake_wechat, wxpay):
    _short_payment(fake_wechat, market.merchants_a[0], 1500)
    alert_id = db.session.scalar(sa.select(FinanceAlert.id))
    for username in ("manager1", "clerk", "leader", "repairer1"):
        client = login_as(username)
        assert client.get("/finance/alerts/").status_code == 403, username
        assert client.post(f"/finance/alerts/{alert_id}/acknowledge").status_code == 403, username
        assert "/finance/alerts/" not in client.get("/").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(FinanceAlert, alert_id).acknowledged_dt is None


def test_finance_resends_an_undelivered_alert_from_the_page(app, login_as, market, robot, wxpay):
    robot.configure_wecom(rate_limit_per_minute=0)  # the robot throttles: the delivery after the commit fails
    order = _short_payment(robot, market.merchants_a[0], 2500)
    deliver_queued()
    alert = db.session.scalar(sa.select(FinanceAlert))
    assert alert.wecom_status == DeliveryStatus.pending and alert.wecom_last_error.startswith("45009")
    finance = login_as("finance")
    assert "45009" in finance.get("/finance/alerts/").get_data(as_text=True)

    robot.configure_wecom(rate_limit_per_minute=20)
    db.session.execute(sa.update(FinanceAlert).values(wecom_next_dt=None))  # backoff over
    db.session.commit()
    assert finance.post("/finance/alerts/retry").status_code == 302
    deliver_queued()

    alert = db.session.get(FinanceAlert, alert.id)
    assert alert.wecom_status == DeliveryStatus.sent
    [message] = robot.wecom_messages()
    assert order.out_trade_no in message["content"] and "¥24.99" in message["content"]


def test_the_list_pages_through_older_alerts(login_as, market, monkeypatch):
    from app.models.alerts import AlertKind
    from app.services import alerts
    from app.views import wechatpay as wechatpay_views

    for n in range(3):
        alerts.raise_alert(AlertKind.trade_bill_mismatch, f"paging-{n}", "trade_bill_mismatches", n,
                           f"对账差异 第{n}条", "差异说明")
    db.session.commit()
    monkeypatch.setattr(wechatpay_views, "PAGE_ROWS", 2)
    client = login_as("finance")

    first = client.get("/finance/alerts/").get_data(as_text=True)
    assert "对账差异 第2条" in first and "对账差异 第1条" in first and "对账差异 第0条" not in first
    assert "page=2" in first
    second = client.get("/finance/alerts/?page=2").get_data(as_text=True)
    assert "对账差异 第0条" in second and "对账差异 第2条" not in second and "page=1" in second
