"""The /_fake/ control API (JSON): what tests and the demo use to drive the fake from outside Python."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .web import FakeError, json_response, read_json

if TYPE_CHECKING:
    from .server import FakeWeChat


def _body(request: Request) -> dict[str, Any]:
    """The JSON object sent, or a 400."""
    body = read_json(request)
    if not isinstance(body, dict):
        raise FakeError(400, "send a JSON object")
    return body


def _required(body: dict[str, Any], *names: str) -> list[str]:
    """Non-empty string fields, or a 400."""
    values = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise FakeError(400, f"{name} is required")
        values.append(value)
    return values


def _notify_options(body: dict[str, Any]) -> dict[str, Any]:
    """tamper / repeat / notify / notify_url, as the Python methods take them."""
    repeat = body.get("repeat", 1)
    if type(repeat) is not int:
        raise FakeError(400, "repeat must be an integer")
    options = {"tamper": body.get("tamper"), "repeat": repeat, "notify": bool(body.get("notify", True))}
    if body.get("notify_url"):
        options["notify_url"] = body["notify_url"]
    return options


def get_config(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/config: the wechat.env values and the current behaviour settings."""
    return json_response({**fake.settings, "FINANCE_ALERT_WEBHOOK_URL": fake.wecom_webhook_url, **fake.configure()})


def post_settings(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/settings {"platform_mode", "corrupt_bill_hash", "app_notify_url"}."""
    body = _body(request)
    return json_response(
        fake.configure(body.get("platform_mode"), body.get("corrupt_bill_hash"), body.get("app_notify_url"))
    )


def post_reset(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/reset: forget orders, refunds, codes, tokens and messages."""
    fake.reset()
    return json_response({"ok": True})


def post_code(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/codes {"code", "openid", "unionid"?}: register a login code."""
    body = _body(request)
    code, openid = _required(body, "code", "openid")
    fake.register_code(code, openid, body.get("unionid"))
    return json_response({"ok": True})


def post_phone(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/phones {"code", "phone", "country_code"?}: register a phone-number code."""
    body = _body(request)
    code, phone = _required(body, "code", "phone")
    fake.register_phone(code, phone, body.get("country_code") or "86")
    return json_response({"ok": True})


def post_expire_tokens(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/tokens/expire: every access token issued so far answers 42001 from now on."""
    fake.expire_tokens()
    return json_response({"ok": True})


def get_messages(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/messages[?touser=]: subscribe messages sent."""
    touser = request.args.get("touser")
    return json_response([m for m in fake.messages() if touser is None or m["touser"] == touser])


def delete_messages(fake: "FakeWeChat", request: Request) -> Response:
    """DELETE /_fake/messages: forget them."""
    fake.clear_messages()
    return json_response({"ok": True})


def get_orders(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/orders: every order."""
    return json_response(fake.orders())


def get_order(fake: "FakeWeChat", request: Request, out_trade_no: str) -> Response:
    """GET /_fake/orders/{out_trade_no}: one order."""
    return json_response(fake.order(out_trade_no))


def get_refunds(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/refunds: every refund."""
    return json_response(fake.refunds())


def get_notifications(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/notifications: every notification delivery and the app's answers."""
    return json_response(fake.notifications())


def post_pay(fake: "FakeWeChat", request: Request, out_trade_no: str) -> Response:
    """POST /_fake/pay/{out_trade_no} {"tamper"?, "repeat"?, "notify"?, "notify_url"?}."""
    try:
        return json_response(fake.pay(out_trade_no, **_notify_options(_body(request))))
    except ValueError as exc:
        raise FakeError(400, str(exc)) from None


def post_request_payment(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/request_payment {timeStamp, nonceStr, package, signType, paySign, + pay options}."""
    body = _body(request)
    try:
        return json_response(fake.request_payment(body, **_notify_options(body)))
    except ValueError as exc:
        raise FakeError(400, str(exc)) from None


def post_refund_notify(fake: "FakeWeChat", request: Request, out_refund_no: str) -> Response:
    """POST /_fake/refund/{out_refund_no}/notify {"status"?: SUCCESS|ABNORMAL|CLOSED, + pay options}."""
    body = _body(request)
    try:
        return json_response(
            fake.notify_refund(out_refund_no, status=body.get("status") or "SUCCESS", **_notify_options(body))
        )
    except ValueError as exc:
        raise FakeError(400, str(exc)) from None


def get_wecom_messages(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/wecom/messages: group robot messages accepted (finance alerts), oldest first."""
    return json_response(fake.wecom_messages())


def delete_wecom_messages(fake: "FakeWeChat", request: Request) -> Response:
    """DELETE /_fake/wecom/messages: forget them and the rate window."""
    fake.clear_wecom()
    return json_response({"ok": True})


def get_wecom_settings(fake: "FakeWeChat", request: Request) -> Response:
    """GET /_fake/wecom/settings: the robot's webhook URL and rate limit."""
    return json_response(fake.configure_wecom())


def post_wecom_settings(fake: "FakeWeChat", request: Request) -> Response:
    """POST /_fake/wecom/settings {"rate_limit_per_minute"}: 0 makes every message answer 45009."""
    return json_response(fake.configure_wecom(_body(request).get("rate_limit_per_minute")))


ROUTES = [
    ("c_wecom_messages", "/_fake/wecom/messages", ["GET"], get_wecom_messages, "control"),
    ("c_wecom_messages_delete", "/_fake/wecom/messages", ["DELETE"], delete_wecom_messages, "control"),
    ("c_wecom_settings", "/_fake/wecom/settings", ["GET"], get_wecom_settings, "control"),
    ("c_wecom_settings_post", "/_fake/wecom/settings", ["POST"], post_wecom_settings, "control"),
    ("c_config", "/_fake/config", ["GET"], get_config, "control"),
    ("c_settings", "/_fake/settings", ["POST"], post_settings, "control"),
    ("c_reset", "/_fake/reset", ["POST"], post_reset, "control"),
    ("c_codes", "/_fake/codes", ["POST"], post_code, "control"),
    ("c_phones", "/_fake/phones", ["POST"], post_phone, "control"),
    ("c_tokens", "/_fake/tokens/expire", ["POST"], post_expire_tokens, "control"),
    ("c_messages", "/_fake/messages", ["GET"], get_messages, "control"),
    ("c_messages_delete", "/_fake/messages", ["DELETE"], delete_messages, "control"),
    ("c_orders", "/_fake/orders", ["GET"], get_orders, "control"),
    ("c_order", "/_fake/orders/<out_trade_no>", ["GET"], get_order, "control"),
    ("c_refunds", "/_fake/refunds", ["GET"], get_refunds, "control"),
    ("c_notifications", "/_fake/notifications", ["GET"], get_notifications, "control"),
    ("c_pay", "/_fake/pay/<out_trade_no>", ["POST"], post_pay, "control"),
    ("c_request_payment", "/_fake/request_payment", ["POST"], post_request_payment, "control"),
    ("c_refund_notify", "/_fake/refund/<out_refund_no>/notify", ["POST"], post_refund_notify, "control"),
]
