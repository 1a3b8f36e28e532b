"""WeChat mini-program server API: login (code2session), phone number, subscribe messages.

Built on wechatpy's WeChatClient. Two things differ from wechatpy's defaults:
- the API base is configurable (wechatpy hard-codes https://api.weixin.qq.com/ in the token fetch);
- wechatpy's own retry on an invalid token is off (it retries without limit); this module fetches a
  new token once and retries once.

Secrets: the app secret and session_key are never logged, never put in exception messages, and
network errors are re-raised without their cause (requests' messages contain the URL, hence the secret).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from enum import IntEnum
from typing import Any

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com/"
DEFAULT_TIMEOUT_SECONDS = 10.0


class WeChatErrcode(IntEnum):
    """WeChat errcodes the app reacts to (WeChatAPIError.errcode compares equal to these)."""

    INVALID_CREDENTIAL = 40001  #: access_token invalid or not the latest: refreshed and retried once
    INVALID_OPENID = 40003  #: touser is not a user of this mini-program
    INVALID_APPID = 40013  #: wrong WECHAT_APPID
    INVALID_ACCESS_TOKEN = 40014  #: malformed access_token: refreshed and retried once
    INVALID_CODE = 40029  #: login/phone code invalid or expired (5 minutes): ask the user again
    INVALID_TEMPLATE_ID = 40037  #: subscribe template id unknown
    INVALID_APPSECRET = 40125  #: wrong WECHAT_SECRET
    CODE_BEEN_USED = 40163  #: login/phone code already used once
    HIGH_RISK_USER = 40226  #: WeChat blocks login for this high-risk user
    ACCESS_TOKEN_EXPIRED = 42001  #: refreshed and retried once
    USER_REFUSED_MESSAGE = 43101  #: user has no subscription left for this template
    RATE_LIMITED = 45011  #: API minute quota reached: retry later
    ARGUMENT_INVALID = 47003  #: subscribe message data does not match the template


#: A token is refreshed this many seconds before WeChat's expiry, so no call carries a dying token.
TOKEN_EXPIRY_MARGIN_SECONDS = 300

#: errcodes after which a fresh access token is fetched and the call retried once.
TOKEN_ERRCODES = frozenset(
    {WeChatErrcode.INVALID_CREDENTIAL, WeChatErrcode.INVALID_ACCESS_TOKEN, WeChatErrcode.ACCESS_TOKEN_EXPIRED}
)


class WeChatError(Exception):
    """Base class of this module's errors."""


class WeChatAPIError(WeChatError):
    """WeChat answered with errcode != 0."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatUnavailable(WeChatError):
    """WeChat could not be reached or did not answer sensibly (network, timeout, HTTP error, not JSON)."""


class _MiniProgramClient(WeChatClient):
    """wechatpy's WeChatClient on a configurable API base, with a token fetch that has a timeout."""

    def __init__(self, appid: str, secret: str, api_base: str, token_storage: SessionStorage | None,
                 http: requests.Session | None, timeout: float,
                 token_lock: Callable[[], AbstractContextManager] | None = None):
        super().__init__(appid, secret, session=token_storage, timeout=timeout, auto_retry=False)
        self.api_base = api_base
        self.API_BASE_URL = api_base + "cgi-bin/"
        self.wxa.API_BASE_URL = api_base
        self._token_lock = token_lock or nullcontext
        if http is not None:
            self._http = http

    @property
    def access_token(self) -> str:
        """The shared token from the storage; fetched (once across processes) when there is none."""
        token = self.session.get(self.access_token_key)
        if token:
            return token
        return self.fetch_access_token()["access_token"]

    def fetch_access_token(self, stale: str | None = None) -> dict[str, Any]:
        """Fetch a new token unless another process already replaced the stale one (or stored one).

        WeChat invalidates the previous token a few minutes after a new one is issued, so processes
        that share a storage must not each fetch their own: the fetch runs under the token lock and
        first looks whether a fresh token arrived while it waited."""
        with self._token_lock():
            current = self.session.get(self.access_token_key)
            if current and current != stale:
                return {"access_token": current}
            return self._fetch_new_token()

    def _fetch_new_token(self) -> dict[str, Any]:
        """GET {api_base}cgi-bin/token and keep the token in the token storage until shortly before it expires."""
        logger.info("Fetching a WeChat access token for %s", self.appid)
        answer = self._http.get(
            self.api_base + "cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        answer.raise_for_status()
        result = self._handle_result(answer)
        if not isinstance(result, dict) or not result.get("access_token"):
            raise WeChatUnavailable("cgi-bin/token answered without an access_token")
        expires_in = int(result.get("expires_in", 7200))
        keep_for = max(expires_in - TOKEN_EXPIRY_MARGIN_SECONDS, min(expires_in, 60))
        self.session.set(self.access_token_key, result["access_token"], keep_for)
        self.expires_at = int(time.time()) + keep_for
        return result


class WeChatMiniProgram:
    """Server-side calls of one mini-program (appid + secret)."""

    def __init__(
        self,
        appid: str,
        secret: str,
        api_base: str = DEFAULT_API_BASE,
        session: requests.Session | None = None,
        token_storage: SessionStorage | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        token_lock: Callable[[], AbstractContextManager] | None = None,
    ):
        """session: the requests.Session to use; token_storage: a wechatpy SessionStorage (default in
        memory; RedisStorage shares the token across workers); token_lock: a factory of a lock shared
        by those workers (e.g. a Redis lock), held while a token is fetched."""
        self.appid = appid
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self._client = _MiniProgramClient(appid, secret, self.api_base, token_storage, session, timeout,
                                          token_lock=token_lock)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> "WeChatMiniProgram":
        """Build from WECHAT_APPID, WECHAT_SECRET and WECHAT_API_BASE (optional)."""
        env = os.environ if environ is None else environ
        return cls(env["WECHAT_APPID"], env["WECHAT_SECRET"],
                   api_base=env.get("WECHAT_API_BASE") or DEFAULT_API_BASE, **kwargs)

    def __repr__(self) -> str:
        return f"<WeChatMiniProgram appid={self.appid} api_base={self.api_base}>"

    def code_to_session(self, js_code: str) -> dict[str, str | None]:
        """Trade a wx.login() code for {"openid", "unionid" (or None), "session_key"}."""
        # Called through client.get rather than client.wxa.code_to_session: jscode2session needs no
        # access_token, and wechatpy would otherwise fetch one first (access_token=None is dropped).
        result = self._call(
            lambda: self._client.get(
                "sns/jscode2session",
                params={"appid": self.appid, "secret": self._client.secret, "js_code": js_code,
                        "grant_type": "authorization_code", "access_token": None},
                api_base_url=self.api_base,
            ),
            uses_token=False,
        )
        if not result.get("openid") or not result.get("session_key"):
            raise WeChatUnavailable("jscode2session answered without openid/session_key")
        return {"openid": result["openid"], "unionid": result.get("unionid"), "session_key": result["session_key"]}

    def get_phone_number(self, phone_code: str) -> str:
        """Trade a getPhoneNumber code for the user's phone number without country code."""
        result = self._call(
            lambda: self._client.post(
                "wxa/business/getuserphonenumber", data={"code": phone_code}, api_base_url=self.api_base
            )
        )
        phone = (result.get("phone_info") or {}).get("purePhoneNumber")
        if not phone:
            raise WeChatUnavailable("getuserphonenumber answered without phone_info.purePhoneNumber")
        return phone

    def send_subscribe_message(
        self, openid: str, template_id: str, data: Mapping[str, Any], page: str | None = None
    ) -> dict[str, Any]:
        """Send a subscribe message; data is {"thing1": "text"} or {"thing1": {"value": "text"}}."""
        payload = {key: dict(value) if isinstance(value, Mapping) else {"value": str(value)}
                   for key, value in data.items()}
        return self._call(lambda: self._client.wxa.send_subscribe_message(openid, template_id, payload, page))

    def _call(self, request: Callable[[], Any], uses_token: bool = True) -> dict[str, Any]:
        """Run a request; on an invalid/expired token fetch a new one and retry once."""
        used = self._client.session.get(self._client.access_token_key) if uses_token else None
        try:
            return self._attempt(request)
        except WeChatAPIError as exc:
            if not uses_token or exc.errcode not in TOKEN_ERRCODES:
                raise
            logger.info("WeChat rejected the access token (errcode %s); fetching a new one", exc.errcode)
        # The token the request carried: read before the call, or fetched by it when there was none.
        stale = used or self._client.session.get(self._client.access_token_key)
        self._attempt(lambda: self._client.fetch_access_token(stale=stale))
        return self._attempt(request)

    @staticmethod
    def _attempt(request: Callable[[], Any]) -> dict[str, Any]:
        """Run a request once and turn every failure into WeChatAPIError or WeChatUnavailable."""
        try:
            result = request()
        except WeChatClientException as exc:
            if exc.errcode is None:
                status = getattr(exc.response, "status_code", None)
                raise WeChatUnavailable(f"WeChat answered HTTP {status}") from None
            logger.info("WeChat API error %s: %s", exc.errcode, exc.errmsg)
            raise WeChatAPIError(int(exc.errcode), str(exc.errmsg)) from None
        except requests.RequestException as exc:
            raise WeChatUnavailable(f"WeChat unreachable ({type(exc).__name__})") from None
        if not isinstance(result, dict):
            raise WeChatUnavailable("WeChat answered something that is not JSON")
        return result
