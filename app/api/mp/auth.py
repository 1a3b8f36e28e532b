"""POST /auth/login, /auth/bind, /auth/logout."""
from __future__ import annotations

from flask import current_app, g

from app.api.mp import api_doc, json_body, mp_api, rate_limit, token_required
from app.api.schemas.auth import BindResultSchema, BindSchema, LoginResultSchema, LoginSchema, binding_dump
from app.extensions import db
from app.integrations.wechat import WeChatMiniProgram
from app.services import bind_tokens, mp_auth


def wechat_client() -> WeChatMiniProgram:
    """The mini-program client (its access token shared through Redis by every worker)."""
    return mp_auth.mini_program_client()


def _login_limit() -> str:
    return current_app.config.get("MP_LOGIN_RATE_LIMIT") or "60/minute"


def _merchants():
    return [binding_dump(b) for b in mp_auth.active_bindings(g.mp_user)]


@mp_api.post("/auth/login")
@api_doc("Log in with a wx.login() code", tags=["auth"], body=LoginSchema, response=LoginResultSchema,
         errors=(401, 403, 429, 502, 503),
         description="Trades the code with WeChat (code2Session) for an API token. 401 invalid_code / "
                     "code_used, 429 when WeChat or this API rate-limits, 403 for users WeChat flags as risky.")
@rate_limit(_login_limit)
def login():
    data = json_body(LoginSchema())
    raw, token, user = mp_auth.login_with_code(wechat_client(), data["code"],
                                               int(current_app.config["MP_TOKEN_TTL_SECONDS"]))
    merchants = [binding_dump(b) for b in mp_auth.active_bindings(user)]
    db.session.commit()
    return LoginResultSchema().dump(
        {"token": raw, "expires_at": token.expires_dt, "is_bound": bool(merchants), "merchants": merchants}
    )


@mp_api.post("/auth/bind")
@api_doc("Bind the WeChat user to a merchant", tags=["auth"], body=BindSchema, response=BindResultSchema,
         errors=(404, 429, 502, 503),
         description="With phone_code: the server asks WeChat for the phone number and binds every merchant "
                     "registered with it (owner). With bind_token: the stall QR code binds to the merchant of "
                     "the unit's current lease (assistant). 404 phone_not_registered / unit_not_leased, "
                     "400 bind_token_invalid / bind_token_expired / invalid_phone_code.")
@token_required
def bind():
    data = json_body(BindSchema())
    if data.get("phone_code"):
        bound = mp_auth.bind_by_phone(g.mp_user, wechat_client(), data["phone_code"])
    else:
        unit_id, market_id = bind_tokens.read_bind_token(data["bind_token"])
        bound = [mp_auth.bind_by_unit(g.mp_user, unit_id, market_id)]
    result = {"bound": [binding_dump(b) for b in bound], "merchants": _merchants()}
    result["is_bound"] = bool(result["merchants"])
    db.session.commit()
    return BindResultSchema().dump(result)


@mp_api.post("/auth/logout")
@api_doc("Log out (revoke this token)", tags=["auth"], status=204)
@token_required
def logout():
    mp_auth.revoke_token(g.api_token)
    db.session.commit()
    return "", 204
