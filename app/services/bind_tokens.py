"""Signed, expiring bind tokens printed as a QR code on each stall (摊位二维码).

A token names a unit; scanning it in the mini-program binds the user, as a shop assistant, to the
merchant holding the unit's active lease at that moment. Tokens are signed with SECRET_KEY
(itsdangerous, own salt) and carry their signing time: they expire after MP_BIND_TOKEN_TTL_SECONDS.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.services.exceptions import DomainError

SALT = "market-steward.mp-bind-unit.v1"
#: Path of the URL encoded in the QR code; the mini-program is configured to open such links.
BIND_PATH = "/mp/bind"
DEFAULT_TTL_SECONDS = 30 * 24 * 3600


class BindTokenInvalid(DomainError):
    code = "bind_token_invalid"
    http_status = 400


class BindTokenExpired(DomainError):
    code = "bind_token_expired"
    http_status = 400


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def ttl_seconds() -> int:
    """How long a printed stall QR code stays valid, in seconds."""
    return int(current_app.config.get("MP_BIND_TOKEN_TTL_SECONDS") or DEFAULT_TTL_SECONDS)


def make_bind_token(unit) -> str:
    """Sign a bind token for a unit (valid for ttl_seconds() from now)."""
    return _serializer().dumps({"unit": unit.id, "market": unit.market_id})


def bind_url(token: str) -> str:
    """The URL printed in a stall's QR code: PUBLIC_BASE_URL/mp/bind?t=<token>."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return f"{base}{BIND_PATH}?{urlencode({'t': token})}"


def _extract(text: str) -> str:
    """Accept the token itself or the whole scanned URL."""
    text = (text or "").strip()
    if "://" in text or text.startswith(BIND_PATH):
        values = parse_qs(urlsplit(text).query).get("t")
        return values[0] if values else ""
    return text


def read_bind_token(text: str) -> tuple[int, int]:
    """Check a scanned bind token (or bind URL) and return (unit_id, market_id)."""
    token = _extract(text)
    if not token:
        raise BindTokenInvalid("二维码内容无效，请扫描摊位上的商户绑定二维码")
    try:
        data = _serializer().loads(token, max_age=ttl_seconds())
    except SignatureExpired:
        raise BindTokenExpired("该摊位二维码已过期，请联系市场管理处重新打印") from None
    except BadSignature:
        raise BindTokenInvalid("二维码无效或已被篡改，请扫描摊位上的商户绑定二维码") from None
    if not isinstance(data, dict) or not isinstance(data.get("unit"), int) or not isinstance(data.get("market"), int):
        raise BindTokenInvalid("二维码内容无效，请扫描摊位上的商户绑定二维码")
    return data["unit"], data["market"]
