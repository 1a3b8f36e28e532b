"""WeChat Pay API v3 for mini-program (JSAPI) payments, built on wechatpayv3.

How wechatpayv3 2.0.4 is used:
- Its Core hard-codes the gateway (`self._gate_way = 'https://api.mch.weixin.qq.com'` in __init__) and
  wechatpayv3.WeChatPay builds that Core itself. `_GatewayCore` turns `_gate_way` into a property that
  ignores the hard-coded value and answers `config.api_base`; `_V3Client` is wechatpayv3.WeChatPay with an
  __init__ that builds a `_GatewayCore` (same attributes as the original). Nothing is monkey-patched.
- Requests are signed and answers verified by wechatpayv3 (both key modes). Its bare `Exception` on a
  bad answer signature becomes WeChatPayError(code="RESPONSE_SIGNATURE_INVALID").
- Notifications are verified here with `cryptography` instead of `callback()`: callback() raises when
  Wechatpay-Signature-Type is absent, does not check the timestamp and cannot say why it refused.
  Certificate-mode platform certificates come from wechatpayv3's store (downloaded from /v3/certificates
  and decrypted with the API v3 key, cached in platform_cert_dir).

Money is integer fen everywhere; times are RFC 3339 with +08:00.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import WeChatPay as _WeChatPayV3
from wechatpayv3 import WeChatPayType
from wechatpayv3.core import Core
from wechatpayv3.type import RequestType
from wechatpayv3.utils import load_private_key, load_public_key, rsa_sign

logger = logging.getLogger(__name__)

PRODUCTION_API_BASE = "https://api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
#: Notifications whose Wechatpay-Timestamp is further than this from now are refused (replays).
NOTIFICATION_MAX_SKEW_SECONDS = 300
#: In certificate mode, an unknown Wechatpay-Serial triggers at most one certificate download per minute.
CERTIFICATE_REFRESH_INTERVAL_SECONDS = 60
DEFAULT_TIMEOUT_SECONDS = 10.0
CST = timezone(timedelta(hours=8), "Asia/Shanghai")

_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")


class WeChatPayError(Exception):
    """WeChat Pay refused a call (HTTP 4xx/5xx with {"code", "message"}) or answered something invalid."""

    def __init__(self, status: int | None, code: str, message: str):
        super().__init__(f"WeChat Pay {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class WeChatPayUnavailable(Exception):
    """WeChat Pay could not be reached (network error, timeout, non-JSON 5xx)."""


class NotificationRejected(Exception):
    """A notification that must not be trusted; reason is a stable key, e.g. "bad_signature".

    Reasons: missing_headers, unsupported_signature_type, unknown_serial, bad_signature,
    stale_timestamp, bad_body, decrypt_failed, wrong_mchid, wrong_appid.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class WeChatPayConfig:
    """A direct merchant's WeChat Pay v3 settings. Give public_key_pem + public_key_id for
    platform-public-key mode, neither for platform-certificate mode (platform_cert_dir caches them)."""

    mchid: str
    appid: str
    apiv3_key: str = field(repr=False)
    private_key_pem: str = field(repr=False)
    cert_serial_no: str
    notify_url: str
    api_base: str = PRODUCTION_API_BASE
    public_key_pem: str | None = field(default=None, repr=False)
    public_key_id: str | None = None
    platform_cert_dir: str | None = None
    #: Where refund notifications go; None sends them to notify_url too (the event_type tells them apart).
    refund_notify_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if len(self.apiv3_key.encode("utf-8")) != 32:
            raise ValueError("apiv3_key must be 32 bytes")
        if (self.public_key_pem is None) != (self.public_key_id is None):
            raise ValueError("give both public_key_pem and public_key_id, or neither (certificate mode)")
        if self.public_key_id is not None and not self.public_key_id.startswith(PUBLIC_KEY_ID_PREFIX):
            raise ValueError(f"public_key_id must start with {PUBLIC_KEY_ID_PREFIX}")

    @property
    def uses_public_key(self) -> bool:
        """True in platform-public-key mode."""
        return self.public_key_id is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "WeChatPayConfig":
        """Build from WECHATPAY_* variables (the fake server's wechat.env uses the same names)."""
        env = os.environ if environ is None else environ

        def read(path_var: str) -> str | None:
            path = env.get(path_var)
            return Path(path).read_text(encoding="utf-8") if path else None

        values: dict[str, Any] = {
            "mchid": env["WECHATPAY_MCHID"],
            "appid": env["WECHAT_APPID"],
            "apiv3_key": env["WECHATPAY_APIV3_KEY"],
            "private_key_pem": read("WECHATPAY_PRIVATE_KEY_PATH"),
            "cert_serial_no": env["WECHATPAY_CERT_SERIAL"],
            "notify_url": env.get("WECHATPAY_NOTIFY_URL", ""),
            "api_base": env.get("WECHATPAY_API_BASE") or PRODUCTION_API_BASE,
            "public_key_pem": read("WECHATPAY_PUBLIC_KEY_PATH"),
            "public_key_id": env.get("WECHATPAY_PUBLIC_KEY_ID") or None,
            "platform_cert_dir": env.get("WECHATPAY_PLATFORM_CERT_DIR") or None,
            "refund_notify_url": env.get("WECHATPAY_REFUND_NOTIFY_URL") or None,
        }
        values.update(overrides)
        if not values["private_key_pem"]:
            raise KeyError("WECHATPAY_PRIVATE_KEY_PATH")
        return cls(**values)


class _GatewayCore(Core):
    """wechatpayv3's Core talking to a configurable gateway, with typed errors."""

    def __init__(self, gateway: str, **kwargs: Any):
        self._configured_gateway = gateway.rstrip("/")
        super().__init__(**kwargs)

    @property
    def _gate_way(self) -> str:
        """The gateway every request goes to."""
        return self._configured_gateway

    @_gate_way.setter
    def _gate_way(self, hard_coded: str) -> None:
        """Ignore the production URL that Core.__init__ assigns."""

    def request(self, path: str, method: RequestType = RequestType.GET, **kwargs: Any) -> tuple[int, Any]:
        """Core.request with network errors and unverifiable answers mapped to this module's errors."""
        try:
            return super().request(path, method=method, **kwargs)
        except (WeChatPayError, WeChatPayUnavailable):
            raise
        except requests.RequestException as exc:
            raise WeChatPayUnavailable(f"{method.value} {path.split('?')[0]}: {type(exc).__name__}") from None
        except Exception as exc:  # wechatpayv3 raises a bare Exception when an answer's signature fails
            raise WeChatPayError(None, "RESPONSE_SIGNATURE_INVALID", str(exc)) from exc


class _V3Client(_WeChatPayV3):
    """wechatpayv3.WeChatPay around a _GatewayCore (its own __init__ builds a hard-coded Core)."""

    def __init__(self, config: WeChatPayConfig):  # pylint: disable=super-init-not-called
        self._type = WeChatPayType.MINIPROG
        self._mchid = config.mchid
        self._appid = config.appid
        self._notify_url = config.notify_url
        self._partner_mode = False
        self._core = _GatewayCore(
            gateway=config.api_base,
            mchid=config.mchid,
            cert_serial_no=config.cert_serial_no,
            private_key=config.private_key_pem,
            apiv3_key=config.apiv3_key,
            cert_dir=config.platform_cert_dir,
            timeout=config.timeout,
            public_key=config.public_key_pem,
            public_key_id=config.public_key_id,
        )


def _check_fen(value: Any, name: str) -> int:
    """An amount must be a positive int in fen: no float, no Decimal, no bool."""
    if type(value) is not int:
        raise TypeError(f"{name} must be an int number of fen, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0")
    return value


def _check_no(value: str, pattern: re.Pattern[str], name: str) -> str:
    """Merchant numbers go into URL paths: allow only WeChat's character set."""
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{name} {value!r} does not match {pattern.pattern}")
    return value


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime the v3 way: 2026-11-23T18:35:00+08:00."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    return moment.astimezone(CST).isoformat(timespec="seconds")


class WeChatPay:
    """The merchant's WeChat Pay v3 calls. Construction does no I/O; the first call may (certificate mode)."""

    def __init__(self, config: WeChatPayConfig):
        self.config = config
        try:
            self._private_key = load_private_key(config.private_key_pem)
            self._public_key = load_public_key(config.public_key_pem) if config.public_key_pem else None
        except Exception as exc:  # wechatpayv3 raises a bare Exception for an unreadable key
            raise ValueError(str(exc)) from None
        self._v3_client: _V3Client | None = None
        self._lock = threading.Lock()
        self._certificates_refreshed_at = 0.0

    def __repr__(self) -> str:
        return f"<WeChatPay mchid={self.config.mchid} api_base={self.config.api_base}>"

    @property
    def _v3(self) -> _V3Client:
        """The wechatpayv3 client, built on first use (certificate mode downloads certificates then)."""
        with self._lock:
            if self._v3_client is None:
                try:
                    self._v3_client = _V3Client(self.config)
                    self._certificates_refreshed_at = time.monotonic()
                except (WeChatPayError, WeChatPayUnavailable):
                    raise
                except Exception as exc:  # "No wechatpay platform certificate ..." from wechatpayv3
                    raise WeChatPayUnavailable(f"cannot load platform certificates: {exc}") from None
            return self._v3_client

    # -- payments ------------------------------------------------------------------------------

    def create_jsapi_order(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        time_expire: datetime | None = None,
        attach: str | None = None,
    ) -> str:
        """Create a JSAPI (mini-program) order and return its prepay_id (valid 2 hours)."""
        _check_no(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        _check_fen(amount_fen, "amount_fen")
        if not description:
            raise ValueError("description is required")
        if not payer_openid:
            raise ValueError("payer_openid is required")
        if not self.config.notify_url:
            raise ValueError("WeChatPayConfig.notify_url is not set")
        status, body = self._v3.pay(
            description=description,
            out_trade_no=out_trade_no,
            amount={"total": amount_fen, "currency": "CNY"},
            payer={"openid": payer_openid},
            time_expire=rfc3339(time_expire) if time_expire else None,
            attach=attach,
            pay_type=WeChatPayType.MINIPROG,
        )
        prepay_id = self._result(status, body).get("prepay_id")
        if not prepay_id:
            raise WeChatPayError(status, "INVALID_RESPONSE", "no prepay_id in the answer")
        return prepay_id

    def jsapi_pay_params(self, prepay_id: str) -> dict[str, str]:
        """Parameters for wx.requestPayment, paySign = RSA-SHA256 over "appid\\ntimeStamp\\nnonceStr\\npackage\\n"."""
        timestamp, nonce_str, package = str(int(time.time())), secrets.token_hex(16), f"prepay_id={prepay_id}"
        message = f"{self.config.appid}\n{timestamp}\n{nonce_str}\n{package}\n"
        return {
            "timeStamp": timestamp,
            "nonceStr": nonce_str,
            "package": package,
            "signType": "RSA",
            "paySign": rsa_sign(self._private_key, message),
        }

    def query_order(self, out_trade_no: str) -> dict[str, Any]:
        """The order as WeChat Pay knows it (trade_state NOTPAY/SUCCESS/CLOSED/REFUND/..., amount in fen)."""
        _check_no(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        return self._result(*self._v3.query(out_trade_no=out_trade_no))

    def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order (idempotent; a paid order answers ORDERPAID)."""
        _check_no(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        self._result(*self._v3.close(out_trade_no=out_trade_no))

    # -- refunds -------------------------------------------------------------------------------

    def refund(
        self, out_refund_no: str, out_trade_no: str, refund_fen: int, total_fen: int, reason: str | None = None
    ) -> dict[str, Any]:
        """Ask for a refund (idempotent by out_refund_no); the answer's status is usually PROCESSING."""
        _check_no(out_refund_no, _OUT_REFUND_NO, "out_refund_no")
        _check_no(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        _check_fen(refund_fen, "refund_fen")
        _check_fen(total_fen, "total_fen")
        if refund_fen > total_fen:
            raise ValueError("refund_fen cannot exceed total_fen")
        status, body = self._v3.refund(
            out_refund_no=out_refund_no,
            out_trade_no=out_trade_no,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            reason=reason,
            notify_url=self.config.refund_notify_url,
        )
        return self._result(status, body)

    def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        """The refund's state: PROCESSING, SUCCESS, CLOSED or ABNORMAL."""
        _check_no(out_refund_no, _OUT_REFUND_NO, "out_refund_no")
        return self._result(*self._v3.query_refund(out_refund_no=out_refund_no))

    # -- bills ---------------------------------------------------------------------------------

    def download_trade_bill(self, bill_date: date, bill_type: str = "ALL") -> str:
        """Download one day's trade bill (CSV text) and check its SHA1 against the announced hash."""
        status, body = self._v3.trade_bill(bill_date=bill_date.isoformat(), bill_type=bill_type, tar_type="GZIP")
        info = self._result(status, body)
        url = info.get("download_url") or ""
        if not url.startswith(self.config.api_base.rstrip("/") + "/"):
            raise WeChatPayError(status, "INVALID_RESPONSE", "download_url is not on the API gateway")
        if str(info.get("hash_type", "")).upper() != "SHA1":
            raise WeChatPayError(status, "INVALID_RESPONSE", f"unsupported hash_type {info.get('hash_type')!r}")
        file_status, content = self._v3.download_bill(url)
        if file_status != 200:
            self._result(file_status, content)
            raise WeChatPayError(file_status, "INVALID_RESPONSE", "bill download failed")
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise WeChatPayError(file_status, "INVALID_RESPONSE", f"bad gzip: {exc}") from None
        if not hmac.compare_digest(hashlib.sha1(raw).hexdigest(), str(info.get("hash_value", "")).lower()):
            raise WeChatPayError(file_status, "BILL_HASH_MISMATCH", "the bill's SHA1 differs from hash_value")
        return raw.decode("utf-8-sig")

    # -- notifications -------------------------------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Verify and decrypt a payment/refund notification: {"id", "event_type", "resource", ...}.

        Checks, in order: Wechatpay-* headers present, signature with the key named by
        Wechatpay-Serial (public key id or platform certificate serial), timestamp within 300 s,
        AES-256-GCM decryption with the API v3 key, mchid (and appid when present) are ours.
        Amounts are the caller's to compare with the bill. Raises NotificationRejected.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        found = _normalize_headers(headers)
        signature, timestamp, nonce_str, serial = (
            found.get(name, "")
            for name in ("wechatpay-signature", "wechatpay-timestamp", "wechatpay-nonce", "wechatpay-serial")
        )
        if not (signature and timestamp and nonce_str and serial):
            raise NotificationRejected("missing_headers")
        signature_type = found.get("wechatpay-signature-type")
        if signature_type and signature_type != SIGNATURE_TYPE:
            raise NotificationRejected("unsupported_signature_type", signature_type)
        key = self._platform_key(serial)
        message = f"{timestamp}\n{nonce_str}\n".encode("utf-8") + body + b"\n"
        try:
            key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, binascii.Error):
            raise NotificationRejected("bad_signature") from None
        try:
            skew = abs(time.time() - int(timestamp))
        except ValueError:
            raise NotificationRejected("stale_timestamp", "not a number") from None
        if skew > NOTIFICATION_MAX_SKEW_SECONDS:
            raise NotificationRejected("stale_timestamp", f"{int(skew)} s from now")
        try:
            envelope = json.loads(body)
            encrypted = envelope["resource"]
            if not isinstance(encrypted, dict):
                raise TypeError("resource is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise NotificationRejected("bad_body", str(exc)) from None
        resource = self._decrypt_resource(encrypted)
        if resource.get("mchid") != self.config.mchid:
            raise NotificationRejected("wrong_mchid", str(resource.get("mchid")))
        if "appid" in resource and resource["appid"] != self.config.appid:
            raise NotificationRejected("wrong_appid", str(resource["appid"]))
        return {
            "id": envelope.get("id"),
            "create_time": envelope.get("create_time"),
            "event_type": envelope.get("event_type"),
            "resource_type": envelope.get("resource_type"),
            "summary": envelope.get("summary"),
            "resource": resource,
        }

    def _decrypt_resource(self, encrypted: Mapping[str, Any]) -> dict[str, Any]:
        """AEAD_AES_256_GCM with the API v3 key; the answer is the resource's JSON."""
        if encrypted.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationRejected("decrypt_failed", f"algorithm {encrypted.get('algorithm')!r}")
        try:
            plaintext = AESGCM(self.config.apiv3_key.encode("utf-8")).decrypt(
                str(encrypted["nonce"]).encode("utf-8"),
                base64.b64decode(encrypted["ciphertext"], validate=True),
                str(encrypted.get("associated_data") or "").encode("utf-8"),
            )
            resource = json.loads(plaintext)
        except (InvalidTag, KeyError, ValueError, binascii.Error):
            raise NotificationRejected("decrypt_failed") from None
        if not isinstance(resource, dict):
            raise NotificationRejected("decrypt_failed", "resource is not an object")
        return resource

    def _platform_key(self, serial: str) -> Any:
        """The platform public key a Wechatpay-Serial names, or NotificationRejected("unknown_serial")."""
        if self._public_key is not None and serial == self.config.public_key_id:
            return self._public_key
        if serial.startswith(PUBLIC_KEY_ID_PREFIX):
            raise NotificationRejected("unknown_serial", serial)
        try:
            wanted = int(serial, 16)
        except ValueError:
            raise NotificationRejected("unknown_serial", serial) from None
        try:
            certificate = self._find_certificate(wanted)
            if certificate is None and self._may_refresh_certificates():
                self._v3._core._update_certificates()  # pylint: disable=protected-access
                certificate = self._find_certificate(wanted)
        except (WeChatPayError, WeChatPayUnavailable) as exc:
            raise NotificationRejected("unknown_serial", f"{serial} (certificates unavailable: {exc})") from None
        if certificate is None:
            raise NotificationRejected("unknown_serial", serial)
        return certificate.public_key()

    def _find_certificate(self, serial_number: int) -> Any:
        """A valid platform certificate with this serial from wechatpayv3's store, if loaded."""
        for certificate in list(self._v3._core._certificates):  # pylint: disable=protected-access
            if certificate.serial_number == serial_number:
                return certificate
        return None

    def _may_refresh_certificates(self) -> bool:
        """Rate-limit certificate downloads caused by unknown serials (forged notifications)."""
        with self._lock:
            now = time.monotonic()
            if now - self._certificates_refreshed_at < CERTIFICATE_REFRESH_INTERVAL_SECONDS:
                return False
            self._certificates_refreshed_at = now
            return True

    # -- answers -------------------------------------------------------------------------------

    @staticmethod
    def _result(status: int, body: Any) -> dict[str, Any]:
        """A 2xx answer's JSON ({} for 204), or the matching exception."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        if 200 <= status < 300:
            if not text.strip():
                return {}
            try:
                data = json.loads(text)
            except ValueError:
                raise WeChatPayError(status, "INVALID_RESPONSE", "answer is not JSON") from None
            if not isinstance(data, dict):
                raise WeChatPayError(status, "INVALID_RESPONSE", "answer is not a JSON object")
            return data
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("code"):
            logger.warning("WeChat Pay error %s %s: %s", status, data["code"], data.get("message"))
            raise WeChatPayError(status, str(data["code"]), str(data.get("message", "")))
        if status >= 500:
            raise WeChatPayUnavailable(f"WeChat Pay answered HTTP {status}")
        raise WeChatPayError(status, "HTTP_ERROR", text[:200])


def _normalize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names; accepts WSGI-style HTTP_WECHATPAY_SIGNATURE keys too."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key.startswith("http_"):
            key = key[5:].replace("_", "-")
        found[key] = value
    return found


def yuan_to_fen(text: str) -> int:
    """Read a bill amount in yuan ("12.34", "-0.01") as integer fen; more than 2 decimals is an error."""
    try:
        fen = Decimal(text.strip()) * 100
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if fen != fen.to_integral_value():
        raise ValueError(f"more than two decimals: {text!r}")
    return int(fen)


def parse_trade_bill(text: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Split a trade bill into detail rows and the summary, keyed by the file's own (Chinese) headers.

    Fields lose their leading backtick; amounts stay yuan strings (use yuan_to_fen).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 3:
        raise ValueError("a trade bill has at least a header, a summary header and a summary line")

    def fields(line: str) -> list[str]:
        return [value[1:] if value.startswith("`") else value for value in line.split(",")]

    header, summary_header, summary = fields(lines[0]), fields(lines[-2]), fields(lines[-1])
    rows = [dict(zip(header, fields(line))) for line in lines[1:-2]]
    return rows, dict(zip(summary_header, summary))
