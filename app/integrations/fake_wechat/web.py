"""Small HTTP helpers shared by the fake's endpoints."""
from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response


class FakeError(Exception):
    """A control-API request that cannot be done (unknown order, closed order, bad option)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def dump_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, as WeChat sends it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(dump_json(data), status=status, content_type="application/json; charset=utf-8")


def read_json(request: Request) -> Any:
    """The request body as JSON, or None when it is not JSON."""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
