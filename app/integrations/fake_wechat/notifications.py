"""Payment and refund notifications: signed with the platform key, resource AES-256-GCM encrypted.

`tamper` builds deliberately wrong ones, so the app's notification endpoint can be shown to refuse them.
"""
from __future__ import annotations

import copy
import secrets
import string
import time
from typing import TYPE_CHECKING, Any, Callable

import requests

from .protocol import SIGNATURE_TYPE, aes_gcm_encrypt, nonce, now_cst, rfc3339, rsa_sign, signed_message
from .web import dump_json

if TYPE_CHECKING:
    from .server import FakeWeChat

#: What each tamper does. Signature-level ones must be refused by parse_notification; content-level
#: ones (amount_short, wrong_mchid, wrong_appid) carry a valid signature and test the app's own checks.
TAMPERS = {
    "amount_short": "amount in the resource is 1 fen less than the order",
    "wrong_key": "signed with a key that is not the platform's",
    "tampered_body": "body changed after signing",
    "stale": "timestamp 10 minutes old (signature valid)",
    "wrong_mchid": "resource carries another merchant id",
    "wrong_appid": "resource carries another appid",
    "missing_headers": "no Wechatpay-* headers",
    "unknown_serial": "Wechatpay-Serial names a key the merchant does not have",
    "wrong_apiv3_key": "resource encrypted with another API v3 key",
}
STALE_SECONDS = 600
MAX_REPEAT = 20


def _tamper_resource(resource: dict[str, Any], original_type: str, tamper: str | None) -> dict[str, Any]:
    """Apply a content-level tamper to a copy of the decrypted resource."""
    resource = copy.deepcopy(resource)
    if tamper == "amount_short":
        amount = resource["amount"]
        keys = ("refund", "payer_refund") if original_type == "refund" else ("total", "payer_total")
        for key in keys:
            if key in amount:
                amount[key] -= 1
    elif tamper == "wrong_mchid":
        resource["mchid"] = "19" + "".join(secrets.choice(string.digits) for _ in range(8))
    elif tamper == "wrong_appid":
        resource["appid"] = "wx" + secrets.token_hex(8)
    return resource


def _unknown_serial(fake: "FakeWeChat") -> str:
    """A serial shaped like the current mode's, but not one the merchant knows."""
    if fake.platform_mode == "certificate":
        return secrets.token_hex(20).upper()
    return "PUB_KEY_ID_0112" + "".join(secrets.choice(string.digits) for _ in range(22))


def build_notification(
    fake: "FakeWeChat",
    *,
    notification_id: str,
    event_type: str,
    summary: str,
    original_type: str,
    resource: dict[str, Any],
    tamper: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Return (headers, body) of one notification, exactly as WeChat Pay POSTs it."""
    if tamper is not None and tamper not in TAMPERS:
        raise ValueError(f"unknown tamper {tamper!r}; known: {', '.join(sorted(TAMPERS))}")
    plain = dump_json(_tamper_resource(resource, original_type, tamper))
    apiv3_key = secrets.token_hex(16) if tamper == "wrong_apiv3_key" else fake.creds.apiv3_key
    encrypted = aes_gcm_encrypt(apiv3_key, plain, original_type)
    envelope = {
        "id": notification_id,
        "create_time": rfc3339(now_cst()),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {"original_type": original_type, **encrypted},
    }
    body = dump_json(envelope)
    timestamp = str(int(time.time()) - (STALE_SECONDS if tamper == "stale" else 0))
    nonce_str = nonce()
    key, serial = fake.signing_identity()
    if tamper == "wrong_key":
        key = fake.rogue_key
    if tamper == "unknown_serial":
        serial = _unknown_serial(fake)
    signature = rsa_sign(key, signed_message(timestamp, nonce_str, body))
    if tamper == "tampered_body":
        body = body.replace(b'"summary":"', b'"summary":"[changed]', 1)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Mozilla/4.0",
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce_str,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }
    if tamper == "missing_headers":
        headers = {name: value for name, value in headers.items() if not name.startswith("Wechatpay-")}
    return headers, body


def deliver(
    fake: "FakeWeChat",
    url: str,
    build: Callable[[], tuple[dict[str, str], bytes]],
    repeat: int,
    event_type: str,
    tamper: str | None,
) -> dict[str, Any]:
    """POST a notification `repeat` times (fresh signature each time, same id) and report the answers."""
    if not 1 <= repeat <= MAX_REPEAT:
        raise ValueError(f"repeat must be between 1 and {MAX_REPEAT}")
    deliveries: list[dict[str, Any]] = []
    for _ in range(repeat):
        headers, body = build()
        try:
            answer = requests.post(url, data=body, headers=headers, timeout=fake.notify_timeout)
            deliveries.append({"status_code": answer.status_code, "body": answer.text[:4000]})
        except requests.RequestException as exc:
            deliveries.append({"status_code": None, "body": "", "error": type(exc).__name__})
    record = {
        "notify_url": url,
        "event_type": event_type,
        "tamper": tamper,
        "deliveries": deliveries,
        "status_code": deliveries[-1]["status_code"],
        "body": deliveries[-1]["body"],
    }
    with fake.state.lock:
        fake.state.deliveries.append(record)
    return record
