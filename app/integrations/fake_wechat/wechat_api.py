"""Mini-program server API endpoints: access token, code2session, phone number, subscribe messages.

WeChat answers HTTP 200 with {"errcode", "errmsg"} on errors, like the real service.
"""
from __future__ import annotations

import base64
import re
import secrets
import time
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from .protocol import now_cst, rfc3339
from .web import json_response, read_json

if TYPE_CHECKING:
    from .server import FakeWeChat

TOKEN_TTL_SECONDS = 7200
#: Subscribe-message template id written to wechat.env as WECHAT_TEMPLATE_TICKET_PROGRESS (the fake
#: accepts any non-empty template id; this one names the ticket progress template of the demo).
TICKET_PROGRESS_TEMPLATE_ID = "FAKE-TPL-ticket-progress"
_PHONE = re.compile(r"^\d{5,15}$")


def wechat_error(errcode: int, errmsg: str) -> Response:
    """A WeChat error answer (HTTP 200, like the real API)."""
    return json_response({"errcode": errcode, "errmsg": f"{errmsg} rid: {secrets.token_hex(12)}"})


def _check_app(fake: "FakeWeChat", request: Request) -> Response | None:
    """Refuse a wrong appid (40013) or secret (40125)."""
    if request.args.get("appid") != fake.creds.appid:
        return wechat_error(40013, "invalid appid")
    if request.args.get("secret") != fake.creds.secret:
        return wechat_error(40125, "invalid appsecret")
    return None


def _check_token(fake: "FakeWeChat", request: Request) -> Response | None:
    """Refuse a missing (41001), expired (42001) or unknown (40001) access_token."""
    token = request.args.get("access_token")
    if not token:
        return wechat_error(41001, "access_token missing")
    with fake.state.lock:
        expires_at = fake.state.tokens.get(token)
        if token in fake.state.expired_tokens or (expires_at is not None and expires_at < time.time()):
            return wechat_error(42001, "access_token expired")
        if expires_at is None:
            return wechat_error(40001, "invalid credential, access_token is invalid or not latest")
    return None


def access_token(fake: "FakeWeChat", request: Request) -> Response:
    """GET /cgi-bin/token: issue a 2-hour access token."""
    if request.args.get("grant_type") != "client_credential":
        return wechat_error(40002, "invalid grant_type")
    refused = _check_app(fake, request)
    if refused:
        return refused
    token = secrets.token_urlsafe(96)
    with fake.state.lock:
        fake.state.tokens[token] = time.time() + TOKEN_TTL_SECONDS
        fake.state.tokens_issued += 1
    return json_response({"access_token": token, "expires_in": TOKEN_TTL_SECONDS})


def code_to_session(fake: "FakeWeChat", request: Request) -> Response:
    """GET /sns/jscode2session: trade a wx.login() code for openid + session_key."""
    refused = _check_app(fake, request)
    if refused:
        return refused
    if request.args.get("grant_type") != "authorization_code":
        return wechat_error(40002, "invalid grant_type")
    code = request.args.get("js_code", "")
    with fake.state.lock:
        if code in fake.state.used_login_codes:
            return wechat_error(40163, "code been used")
        if code.startswith("ratelimit"):
            return wechat_error(45011, "api minute-quota reach limit  mustslower  retry next minute")
        if code.startswith("risky"):
            return wechat_error(40226, "high risk user")
        registered = fake.state.login_codes.get(code)
        if registered is None and code.startswith("code-") and len(code) > len("code-"):
            registered = {"openid": code[len("code-"):], "unionid": None}
        if registered is None:
            return wechat_error(40029, "invalid code")
        fake.state.used_login_codes.add(code)
    answer = {
        "openid": registered["openid"],
        "session_key": base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
    }
    if registered.get("unionid"):
        answer["unionid"] = registered["unionid"]
    return json_response(answer)


def phone_number(fake: "FakeWeChat", request: Request) -> Response:
    """POST /wxa/business/getuserphonenumber: trade a getPhoneNumber code for the user's number."""
    refused = _check_token(fake, request)
    if refused:
        return refused
    body = read_json(request)
    if not isinstance(body, dict):
        return wechat_error(47001, "data format error")
    code = body.get("code") or ""
    with fake.state.lock:
        if code in fake.state.used_phone_codes:
            return wechat_error(40163, "code been used")
        registered = fake.state.phone_codes.get(code)
        digits = code[len("phone-"):] if code.startswith("phone-") else ""
        if registered is None and _PHONE.match(digits):
            registered = {"phone": digits, "country_code": "86"}
        if registered is None:
            return wechat_error(40029, "invalid code")
        fake.state.used_phone_codes.add(code)
    pure, country = registered["phone"], registered["country_code"]
    return json_response(
        {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": pure if country == "86" else f"+{country} {pure}",
                "purePhoneNumber": pure,
                "countryCode": country,
                "watermark": {"timestamp": int(time.time()), "appid": fake.creds.appid},
            },
        }
    )


def subscribe_send(fake: "FakeWeChat", request: Request) -> Response:
    """POST /cgi-bin/message/subscribe/send: record a subscribe message.

    An openid starting with "refuse" behaves like a user who did not subscribe (43101).
    """
    refused = _check_token(fake, request)
    if refused:
        return refused
    body = read_json(request)
    if not isinstance(body, dict):
        return wechat_error(47001, "data format error")
    touser, template_id, data = body.get("touser"), body.get("template_id"), body.get("data")
    if not touser or not isinstance(touser, str):
        return wechat_error(40003, "invalid openid")
    if not template_id or not isinstance(template_id, str):
        return wechat_error(40037, "invalid template_id")
    if not isinstance(data, dict) or not data:
        return wechat_error(47003, "argument invalid! data is empty")
    for key, item in data.items():
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            return wechat_error(47003, f"argument invalid! data.{key}.value invalid")
    if touser.startswith("refuse"):
        return wechat_error(43101, "user refuse to accept the msg")
    with fake.state.lock:
        msgid = len(fake.state.messages) + 1
        fake.state.messages.append(
            {
                "msgid": msgid,
                "touser": touser,
                "template_id": template_id,
                "page": body.get("page"),
                "data": data,
                "miniprogram_state": body.get("miniprogram_state"),
                "lang": body.get("lang"),
                "sent_time": rfc3339(now_cst()),
            }
        )
    return json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})
