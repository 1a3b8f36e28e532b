"""The fake account's identifiers and keys: generated once, kept in a state directory, reloaded after."""
from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.x509.oid import NameOID

#: Files in the state directory. The two "fake_platform_*" private keys only ever belong to WeChat Pay:
#: a real merchant never sees them; the fake needs them to sign answers and notifications.
MERCHANT_KEY_FILE = "apiclient_key.pem"
MERCHANT_CERT_FILE = "apiclient_cert.pem"
PLATFORM_CERT_FILE = "platform_cert.pem"
PLATFORM_PUBLIC_KEY_FILE = "platform_public_key.pem"
PLATFORM_CERT_KEY_FILE = "fake_platform_cert_key.pem"
PLATFORM_KEY_FILE = "fake_platform_key.pem"
CONFIG_FILE = "config.json"
ENV_FILE = "wechat.env"


def _random_text(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """Return a random string of the given alphabet."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _new_rsa_key() -> RSAPrivateKey:
    """Generate an RSA-2048 key, the size WeChat Pay uses."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed_cert(key: RSAPrivateKey, common_name: str, organization: str) -> x509.Certificate:
    """Build a 5-year self-signed certificate with a random 160-bit serial (40 hex digits, like WeChat's)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.now(timezone.utc)
    serial = secrets.randbits(159) | (1 << 156)  # positive, always 40 hex digits
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=5 * 365))
        .sign(key, hashes.SHA256())
    )


def cert_serial(cert: x509.Certificate) -> str:
    """Return a certificate serial the way WeChat Pay writes it: upper-case hex."""
    return format(cert.serial_number, "X")


def _key_pem(key: RSAPrivateKey) -> bytes:
    """Serialize a private key as PKCS#8 PEM (the apiclient_key.pem format)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: RSAPrivateKey) -> bytes:
    """Serialize the public half of a key as SubjectPublicKeyInfo PEM."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Write a file; private keys are readable by the owner only."""
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


@dataclass
class Credentials:
    """Everything a merchant is given by WeChat and WeChat Pay, plus the platform's private keys."""

    state_dir: Path
    appid: str
    secret: str
    mchid: str
    apiv3_key: str
    public_key_id: str
    merchant_key: RSAPrivateKey
    merchant_cert: x509.Certificate
    platform_cert_key: RSAPrivateKey
    platform_cert: x509.Certificate
    platform_key: RSAPrivateKey

    @property
    def merchant_cert_serial(self) -> str:
        """Serial of the merchant API certificate (the `serial_no` in Authorization headers)."""
        return cert_serial(self.merchant_cert)

    @property
    def platform_cert_serial(self) -> str:
        """Serial of the platform certificate (Wechatpay-Serial in certificate mode)."""
        return cert_serial(self.platform_cert)

    def path(self, name: str) -> str:
        """Absolute path of a file in the state directory."""
        return str((self.state_dir / name).resolve())

    @classmethod
    def load_or_create(cls, state_dir: str | os.PathLike) -> "Credentials":
        """Reload the account from state_dir, or create a new one there."""
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        needed = [CONFIG_FILE, MERCHANT_KEY_FILE, MERCHANT_CERT_FILE, PLATFORM_CERT_FILE,
                  PLATFORM_CERT_KEY_FILE, PLATFORM_KEY_FILE]
        if all((directory / name).exists() for name in needed):
            return cls._load(directory)
        return cls._create(directory)

    @classmethod
    def _load(cls, directory: Path) -> "Credentials":
        """Read identifiers from config.json and keys from the PEM files."""
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))

        def key(name: str) -> RSAPrivateKey:
            return serialization.load_pem_private_key((directory / name).read_bytes(), password=None)

        def cert(name: str) -> x509.Certificate:
            return x509.load_pem_x509_certificate((directory / name).read_bytes())

        return cls(
            state_dir=directory,
            appid=config["WECHAT_APPID"],
            secret=config["WECHAT_SECRET"],
            mchid=config["WECHATPAY_MCHID"],
            apiv3_key=config["WECHATPAY_APIV3_KEY"],
            public_key_id=config["WECHATPAY_PUBLIC_KEY_ID"],
            merchant_key=key(MERCHANT_KEY_FILE),
            merchant_cert=cert(MERCHANT_CERT_FILE),
            platform_cert_key=key(PLATFORM_CERT_KEY_FILE),
            platform_cert=cert(PLATFORM_CERT_FILE),
            platform_key=key(PLATFORM_KEY_FILE),
        )

    @classmethod
    def _create(cls, directory: Path) -> "Credentials":
        """Generate a new account and write its key files."""
        mchid = "19" + _random_text(8, string.digits)
        merchant_key, platform_cert_key, platform_key = _new_rsa_key(), _new_rsa_key(), _new_rsa_key()
        creds = cls(
            state_dir=directory,
            appid="wx" + secrets.token_hex(8),
            secret=secrets.token_hex(16),
            mchid=mchid,
            apiv3_key=_random_text(32),
            public_key_id="PUB_KEY_ID_0112" + mchid + _random_text(12, string.digits),
            merchant_key=merchant_key,
            merchant_cert=_self_signed_cert(merchant_key, mchid, "Fake merchant (market steward)"),
            platform_cert_key=platform_cert_key,
            platform_cert=_self_signed_cert(platform_cert_key, "Tenpay.com fake platform", "Fake WeChat Pay"),
            platform_key=platform_key,
        )
        pem = serialization.Encoding.PEM
        _write(directory / MERCHANT_KEY_FILE, _key_pem(merchant_key), private=True)
        _write(directory / MERCHANT_CERT_FILE, creds.merchant_cert.public_bytes(pem))
        _write(directory / PLATFORM_CERT_FILE, creds.platform_cert.public_bytes(pem))
        _write(directory / PLATFORM_PUBLIC_KEY_FILE, _public_pem(platform_key))
        _write(directory / PLATFORM_CERT_KEY_FILE, _key_pem(platform_cert_key), private=True)
        _write(directory / PLATFORM_KEY_FILE, _key_pem(platform_key), private=True)
        creds.write_settings(base_url=None)
        return creds

    def settings(self, base_url: str | None, app_notify_url: str | None = None) -> dict[str, str]:
        """The variables a deployment reads (the wechat.env lines), with absolute paths."""
        values = {
            "WECHAT_APPID": self.appid,
            "WECHAT_SECRET": self.secret,
            "WECHAT_API_BASE": (base_url + "/") if base_url else "",
            "WECHATPAY_MCHID": self.mchid,
            "WECHATPAY_API_BASE": base_url or "",
            "WECHATPAY_APIV3_KEY": self.apiv3_key,
            "WECHATPAY_PRIVATE_KEY_PATH": self.path(MERCHANT_KEY_FILE),
            "WECHATPAY_CERT_SERIAL": self.merchant_cert_serial,
            "WECHATPAY_PUBLIC_KEY_PATH": self.path(PLATFORM_PUBLIC_KEY_FILE),
            "WECHATPAY_PUBLIC_KEY_ID": self.public_key_id,
            "WECHATPAY_MERCHANT_CERT_PATH": self.path(MERCHANT_CERT_FILE),
            "WECHATPAY_PLATFORM_CERT_PATH": self.path(PLATFORM_CERT_FILE),
            "WECHATPAY_PLATFORM_CERT_SERIAL": self.platform_cert_serial,
        }
        if app_notify_url:
            values["WECHATPAY_NOTIFY_URL"] = app_notify_url
        return values

    def write_settings(self, base_url: str | None, app_notify_url: str | None = None,
                       extra: dict[str, str] | None = None) -> dict[str, str]:
        """Write wechat.env and config.json for the given base URL (plus extra lines) and return the values."""
        values = {**self.settings(base_url, app_notify_url), **(extra or {})}
        env = "".join(f"{name}={value}\n" for name, value in values.items())
        _write(self.state_dir / ENV_FILE, env.encode("utf-8"), private=True)
        text = json.dumps(values, ensure_ascii=False, indent=2) + "\n"
        _write(self.state_dir / CONFIG_FILE, text.encode("utf-8"), private=True)
        return values
