"""WeCom (企业微信) group robot webhook: push a markdown or text message to a group chat.

    POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY
    {"msgtype": "markdown", "markdown": {"content": "..."}}          content <= 4096 bytes (UTF-8)
    {"msgtype": "text", "text": {"content": "...", "mentioned_mobile_list": ["138..."]}}   <= 2048 bytes
    -> HTTP 200 {"errcode": 0, "errmsg": "ok"}

Errors come back as HTTP 200 with errcode != 0: 93000 invalid webhook url (wrong or deleted key),
45009 rate limit (20 messages per minute per robot), 40008 invalid message type. The key is the
robot's only credential and sits in the URL: it is never logged and never put in an error message
(requests' exception texts contain the URL, so they are not passed on).
"""
from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

import requests

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5.0
MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048


class WeComErrcode(IntEnum):
    """errcodes of the group robot the app reacts to."""

    OK = 0
    INVALID_MESSAGE_TYPE = 40008  #: msgtype unknown or its body missing
    CONTENT_TOO_LONG = 40058  #: content over the size limit
    RATE_LIMITED = 45009  #: more than 20 messages in a minute: retry later
    INVALID_WEBHOOK = 93000  #: wrong or deleted key


class WeComError(Exception):
    """Base class of this module's errors."""


class WeComAPIError(WeComError):
    """The robot answered errcode != 0."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"WeCom robot error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def is_rate_limited(self) -> bool:
        return self.errcode == WeComErrcode.RATE_LIMITED


class WeComUnavailable(WeComError):
    """The robot could not be reached or did not answer sensibly (network, timeout, HTTP error, not JSON)."""


def redact(url: str) -> str:
    """The webhook URL without its key (for logs and pages)."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}?key=***" if parts.netloc else "(none)"


def _truncate(text: str, max_bytes: int) -> str:
    """Cut text to max_bytes of UTF-8 without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - len("…".encode("utf-8"))].decode("utf-8", errors="ignore") + "…"


class WeComRobot:
    """One group robot, addressed by its full webhook URL (key included)."""

    def __init__(self, webhook_url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 http: requests.Session | None = None):
        if not webhook_url or "key=" not in webhook_url:
            raise ValueError("the webhook URL must carry ?key=")
        self._url = webhook_url
        self.timeout = timeout
        self._http = http or requests.Session()

    def __repr__(self) -> str:
        return f"WeComRobot({redact(self._url)})"

    def send_markdown(self, content: str) -> dict[str, Any]:
        """Send a markdown message (cut to 4096 bytes)."""
        return self._send({"msgtype": "markdown", "markdown": {"content": _truncate(content, MARKDOWN_MAX_BYTES)}})

    def send_text(self, content: str, mentioned_mobiles: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """Send a text message (cut to 2048 bytes), @-mentioning group members by mobile number ("@all" for all)."""
        text: dict[str, Any] = {"content": _truncate(content, TEXT_MAX_BYTES)}
        if mentioned_mobiles:
            text["mentioned_mobile_list"] = list(mentioned_mobiles)
        return self._send({"msgtype": "text", "text": text})

    def _send(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(self._url, json=payload, timeout=self.timeout)
        except requests.Timeout:
            raise WeComUnavailable(f"timeout after {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise WeComUnavailable(f"cannot reach the robot ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise WeComUnavailable(f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise WeComUnavailable("answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("errcode"), int):
            raise WeComUnavailable("answer has no errcode")
        if answer["errcode"] != 0:
            errmsg = str(answer.get("errmsg") or "")[:200]
            logger.warning("WeCom robot %s refused a message: %s %s", redact(self._url), answer["errcode"], errmsg)
            raise WeComAPIError(answer["errcode"], errmsg)
        return answer
