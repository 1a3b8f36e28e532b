"""WeCom (企业微信) group robot webhook: POST /cgi-bin/webhook/send?key=KEY, as qyapi.weixin.qq.com answers it.

Checks the key (93000), the message (40008 unknown msgtype, 44004 empty content, 40058 too long,
47001 not JSON), and the robot's limit of 20 messages a minute (45009); records what it accepted.
Answers are HTTP 200 with {"errcode", "errmsg"}, like the real service.
"""
from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .protocol import now_cst, rfc3339
from .web import json_response, read_json

if TYPE_CHECKING:
    from .server import FakeWeChat

WEBHOOK_PATH = "/cgi-bin/webhook/send"
RATE_LIMIT_PER_MINUTE = 20
MAX_BYTES = {"markdown": 4096, "text": 2048}
#: Message types the real robot knows; the fake accepts text and markdown and refuses the others.
KNOWN_TYPES = {"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"}


def robot_key(seed: str) -> str:
    """A stable robot key shaped like WeCom's (a UUID), derived from the fake's own secrets."""
    return str(uuid.UUID(bytes=hashlib.sha256(b"wecom-robot:" + seed.encode("utf-8")).digest()[:16]))


class RobotState:
    """What the fake robot received, its rate window and its settings; one lock guards it all."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.rate_limit_per_minute = RATE_LIMIT_PER_MINUTE
        self.reset()

    def reset(self) -> None:
        """Forget the messages and the rate window (the limit setting stays)."""
        with self.lock:
            self.messages: list[dict[str, Any]] = []
            self.sent_times: deque[float] = deque()
            self.refused: list[dict[str, Any]] = []


def _error(errcode: int, errmsg: str) -> Response:
    return json_response({"errcode": errcode, "errmsg": errmsg})


def _check_message(body: Any) -> tuple[int, str] | None:
    """(errcode, errmsg) for a message the real robot would refuse, else None."""
    if not isinstance(body, dict):
        return 47001, "data format error"
    msgtype = body.get("msgtype")
    if msgtype not in KNOWN_TYPES:
        return 40008, "invalid message type"
    if msgtype not in MAX_BYTES:
        return 40008, f"invalid message type (the fake robot takes text and markdown, not {msgtype})"
    part = body.get(msgtype)
    if not isinstance(part, dict):
        return 40008, "invalid message type"
    content = part.get("content")
    if not isinstance(content, str) or not content.strip():
        return 44004, "empty content"
    if len(content.encode("utf-8")) > MAX_BYTES[msgtype]:
        return 40058, f"{msgtype}.content exceed max length {MAX_BYTES[msgtype]}"
    for name in ("mentioned_list", "mentioned_mobile_list"):
        value = part.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            return 40058, f"invalid {name}"
        if value is not None and msgtype != "text":
            return 40058, f"{name} is only for text messages"
    return None


def webhook_send(fake: "FakeWeChat", request: Request) -> Response:
    """POST /cgi-bin/webhook/send?key=KEY: check and record one group robot message."""
    robot = fake.wecom
    if request.args.get("key") != fake.wecom_key:
        return _error(93000, "invalid webhook url, hint: [fake] key not found")
    body = read_json(request)
    refused = _check_message(body)
    now = time.time()
    with robot.lock:
        if refused is not None:
            robot.refused.append({"errcode": refused[0], "body": body})
            return _error(*refused)
        while robot.sent_times and robot.sent_times[0] <= now - 60:
            robot.sent_times.popleft()
        if len(robot.sent_times) >= robot.rate_limit_per_minute:
            robot.refused.append({"errcode": 45009, "body": body})
            return _error(45009, "api freq out of limit")
        robot.sent_times.append(now)
        msgtype = body["msgtype"]
        part = body[msgtype]
        robot.messages.append({
            "msgid": len(robot.messages) + 1,
            "msgtype": msgtype,
            "content": part["content"],
            "mentioned_list": part.get("mentioned_list") or [],
            "mentioned_mobile_list": part.get("mentioned_mobile_list") or [],
            "received_time": rfc3339(now_cst()),
        })
    return _error(0, "ok")


ROUTES = [
    ("wecom_send", WEBHOOK_PATH, ["POST"], webhook_send, "wechat"),
]
