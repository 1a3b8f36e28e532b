"""WeChat Pay API v3 wire rules as the platform side applies them: signatures, AES-GCM, time format.

Written independently of app/integrations/wechatpay.py on purpose: a mistake shared by the client
and the fake would otherwise go unnoticed.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
#: China has one offset all year; v3 writes times as RFC 3339 with +08:00.
CST = timezone(timedelta(hours=8), "Asia/Shanghai")

_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def now_cst() -> datetime:
    """Current time in Beijing time."""
    return datetime.now(CST)


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as v3 does: 2026-11-23T18:35:00+08:00."""
    return moment.astimezone(CST).isoformat(timespec="seconds")


def parse_rfc3339(text: str) -> datetime:
    """Parse a v3 time; a naive value is refused."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("time without offset")
    return moment


def nonce(length: int = 32) -> str:
    """Random upper-case alphanumeric nonce."""
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def rsa_sign(key: RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5) signature, base64."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    """Check a base64 SHA256withRSA signature."""
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def signed_message(*parts: str | bytes) -> bytes:
    """Join the parts of a v3 signature string: each followed by a newline."""
    return b"".join((part.encode("utf-8") if isinstance(part, str) else part) + b"\n" for part in parts)


def parse_authorization(header: str) -> dict[str, str] | None:
    """Split `WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",...` into its fields."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SIGNATURE_TYPE:
        return None
    return dict(_AUTH_PARAM.findall(rest))


def aes_gcm_encrypt(apiv3_key: str, plaintext: bytes, associated_data: str) -> dict[str, str]:
    """Encrypt a resource the way notifications and /v3/certificates carry it."""
    iv = nonce(12)
    ciphertext = AESGCM(apiv3_key.encode("utf-8")).encrypt(
        iv.encode("ascii"), plaintext, associated_data.encode("utf-8")
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        "associated_data": associated_data,
        "nonce": iv,
    }
