"""WeChatMiniProgram against the fake over HTTP: login, phone number, subscribe messages, errors."""
from __future__ import annotations

import socket

import pytest
from wechatpy.session.memorystorage import MemoryStorage

from app.integrations.wechat import (
    WeChatAPIError,
    WeChatErrcode,
    WeChatMiniProgram,
    WeChatUnavailable,
)


def test_login_with_registered_code_gives_openid_unionid_and_session_key(fake, wechat):
    fake.register_code("wx-login-1", "o-merchant-1", unionid="u-merchant-1")

    session = wechat.code_to_session("wx-login-1")

    assert session["openid"] == "o-merchant-1"
    assert session["unionid"] == "u-merchant-1"
    assert len(session["session_key"]) == 24  # base64 of 16 bytes, as WeChat's


def test_login_with_deterministic_code_has_no_unionid(wechat):
    session = wechat.code_to_session("code-o-merchant-2")

    assert session == {"openid": "o-merchant-2", "unionid": None, "session_key": session["session_key"]}


def test_login_needs_no_access_token(fake, wechat):
    before = fake.tokens_issued

    wechat.code_to_session("code-o-merchant-3")

    assert fake.tokens_issued == before


@pytest.mark.parametrize(
    ("code", "errcode"),
    [
        ("bad-code", WeChatErrcode.INVALID_CODE),
        ("never-registered", 40029),
        ("ratelimit-1", WeChatErrcode.RATE_LIMITED),
        ("risky-user-1", WeChatErrcode.HIGH_RISK_USER),
    ],
)
def test_login_errors_are_raised_with_their_errcode(wechat, code, errcode):
    with pytest.raises(WeChatAPIError) as caught:
        wechat.code_to_session(code)

    assert caught.value.errcode == errcode
    assert caught.value.errmsg


def test_login_code_used_twice_is_40163(wechat):
    wechat.code_to_session("code-o-merchant-4")

    with pytest.raises(WeChatAPIError) as caught:
        wechat.code_to_session("code-o-merchant-4")

    assert caught.value.errcode == WeChatErrcode.CODE_BEEN_USED


def test_wrong_secret_and_wrong_appid_are_refused(fake):
    wrong_secret = WeChatMiniProgram(fake.creds.appid, "0" * 32, api_base=fake.base_url)
    wrong_appid = WeChatMiniProgram("wx0000000000000000", fake.creds.secret, api_base=fake.base_url)

    with pytest.raises(WeChatAPIError) as secret_error:
        wrong_secret.code_to_session("code-o-x")
    with pytest.raises(WeChatAPIError) as appid_error:
        wrong_appid.get_phone_number("phone-13800000000")

    assert secret_error.value.errcode == WeChatErrcode.INVALID_APPSECRET
    assert appid_error.value.errcode == WeChatErrcode.INVALID_APPID


def test_phone_number_from_registered_and_deterministic_codes(fake, wechat):
    fake.register_phone("getphone-1", "13912345678")

    assert wechat.get_phone_number("getphone-1") == "13912345678"
    assert wechat.get_phone_number("phone-13800138000") == "13800138000"


def test_foreign_phone_number_comes_without_country_code(fake, wechat):
    fake.register_phone("getphone-hk", "51234567", country_code="852")

    assert wechat.get_phone_number("getphone-hk") == "51234567"


def test_unknown_or_reused_phone_code_is_refused(wechat):
    wechat.get_phone_number("phone-13700000000")

    with pytest.raises(WeChatAPIError) as unknown:
        wechat.get_phone_number("not-a-phone-code")
    with pytest.raises(WeChatAPIError) as reused:
        wechat.get_phone_number("phone-13700000000")

    assert unknown.value.errcode == WeChatErrcode.INVALID_CODE
    assert reused.value.errcode == WeChatErrcode.CODE_BEEN_USED


def test_access_token_is_cached_then_refreshed_once_when_expired(fake, wechat):
    wechat.get_phone_number("phone-13600000001")
    after_first = fake.tokens_issued
    wechat.get_phone_number("phone-13600000002")
    assert fake.tokens_issued == after_first  # cached

    fake.expire_tokens()  # the next call answers 42001
    assert wechat.get_phone_number("phone-13600000003") == "13600000003"

    assert fake.tokens_issued == after_first + 1


def test_token_storage_is_shared_between_clients(fake):
    storage = MemoryStorage()
    first = WeChatMiniProgram(fake.creds.appid, fake.creds.secret, api_base=fake.base_url, token_storage=storage)
    second = WeChatMiniProgram(fake.creds.appid, fake.creds.secret, api_base=fake.base_url, token_storage=storage)
    before = fake.tokens_issued

    first.get_phone_number("phone-13500000001")
    second.get_phone_number("phone-13500000002")

    assert fake.tokens_issued == before + 1
    assert storage.get(f"{fake.creds.appid}_access_token")


def test_subscribe_message_reaches_wechat(fake, wechat):
    answer = wechat.send_subscribe_message(
        "o-merchant-msg",
        "TPL-bill-due",
        {"thing1": "A区12号 电费", "amount2": {"value": "123.45元"}},
        page="pages/bills/detail/index?id=7",
    )

    sent = [m for m in fake.messages() if m["touser"] == "o-merchant-msg"]
    assert answer["msgid"] == sent[-1]["msgid"]
    assert sent[-1]["template_id"] == "TPL-bill-due"
    assert sent[-1]["page"] == "pages/bills/detail/index?id=7"
    assert sent[-1]["data"] == {"thing1": {"value": "A区12号 电费"}, "amount2": {"value": "123.45元"}}


def test_subscribe_message_refused_by_user_is_43101(fake, wechat):
    before = len(fake.messages())

    with pytest.raises(WeChatAPIError) as caught:
        wechat.send_subscribe_message("refuse-o-1", "TPL-bill-due", {"thing1": "x"})

    assert caught.value.errcode == WeChatErrcode.USER_REFUSED_MESSAGE
    assert len(fake.messages()) == before


def test_subscribe_message_with_bad_data_is_47003(wechat):
    with pytest.raises(WeChatAPIError) as caught:
        wechat.send_subscribe_message("o-merchant-msg", "TPL-bill-due", {"thing1": {"value": 5}})

    assert caught.value.errcode == WeChatErrcode.ARGUMENT_INVALID


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_wechat_raises_unavailable_without_leaking_the_secret(fake):
    secret = fake.creds.secret
    client = WeChatMiniProgram(fake.creds.appid, secret, api_base=f"http://127.0.0.1:{_closed_port()}/", timeout=2)

    with pytest.raises(WeChatUnavailable) as login_error:
        client.code_to_session("code-o-1")
    with pytest.raises(WeChatUnavailable) as phone_error:
        client.get_phone_number("phone-13800000000")

    for error in (login_error.value, phone_error.value):
        assert secret not in str(error)
        assert error.__cause__ is None and error.__suppress_context__
    assert secret not in repr(client)


def test_http_error_from_wechat_is_unavailable(fake):
    client = WeChatMiniProgram(fake.creds.appid, fake.creds.secret, api_base=fake.base_url + "/no-such-prefix/")

    with pytest.raises(WeChatUnavailable, match="HTTP 404"):
        client.code_to_session("code-o-1")
