"""Mini-program login, API tokens and merchant bindings (小程序登录与商户绑定).

Tokens are 32 random bytes (urlsafe base64); only their SHA-256 is stored. The WeChat session_key
is not stored and never leaves this module. Functions flush, never commit.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from wechatpy.session.redisstorage import RedisStorage

from app.extensions import db
from app.integrations.wechat import DEFAULT_API_BASE, WeChatAPIError, WeChatErrcode, WeChatMiniProgram, WeChatUnavailable
from app.models.enums import LeaseStatus
from app.models.leases import Lease, lease_units
from app.models.merchants import Merchant
from app.models.units import Unit
from app.models.wechat_users import ApiToken, BindingMethod, BindingRole, MerchantBinding, WeChatUser
from app.services.exceptions import DomainError, Forbidden, NotFound
from app.utils.dates import now_utc

logger = logging.getLogger(__name__)

#: last_used_dt is written at most this often per token.
TOUCH_INTERVAL = timedelta(minutes=5)
#: Leases whose merchant a stall QR code binds to.
CURRENT_LEASE_STATUSES = (LeaseStatus.active, LeaseStatus.expiring)


#: Redis key prefix of the shared WeChat access token (wechatpy's RedisStorage) and its refresh lock.
TOKEN_KEY_PREFIX = "market:wechat"


def mini_program_client() -> WeChatMiniProgram:
    """The mini-program client for the app's WECHAT_* settings, its access token shared by every worker.

    The token lives in Redis (the jobs' Redis, or the in-process fakeredis of the embedded default)
    and is fetched under a Redis lock, so gunicorn workers and RQ workers use one token instead of
    invalidating each other's. One client per settings is kept on the app."""
    from app.queues import get_redis

    app = current_app._get_current_object()
    key = (app.config.get("WECHAT_APPID") or "", app.config.get("WECHAT_SECRET") or "",
           app.config.get("WECHAT_API_BASE") or DEFAULT_API_BASE)
    clients = app.extensions.setdefault("mp_wechat_clients", {})
    client = clients.get(key)
    if client is None:
        redis = get_redis()
        lock_name = f"{TOKEN_KEY_PREFIX}:{key[0]}:token-lock"
        client = clients[key] = WeChatMiniProgram(
            key[0], key[1], api_base=key[2],
            token_storage=RedisStorage(redis, prefix=TOKEN_KEY_PREFIX),
            token_lock=lambda: _token_lock(redis, lock_name),
        )
    return client


@contextmanager
def _token_lock(redis, name: str):
    """Hold the shared token-refresh lock; WeChatUnavailable when Redis cannot give it within 30 s."""
    from redis.exceptions import LockError, RedisError

    lock = redis.lock(name, timeout=30, blocking_timeout=30)
    try:
        acquired = lock.acquire()
    except RedisError:
        raise WeChatUnavailable("the access-token lock could not be taken (Redis)") from None
    if not acquired:
        raise WeChatUnavailable("the access-token lock stayed busy")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:
            logger.warning("The access-token lock expired before it was released")


class AuthFailed(DomainError):
    """The bearer token is missing, unknown, expired or revoked."""

    code = "invalid_token"
    http_status = 401


class InvalidRequest(DomainError):
    """A malformed request header or parameter."""

    code = "bad_request"
    http_status = 400


class WeChatRefused(DomainError):
    """WeChat refused a login or phone code, or could not be reached."""

    http_status = 502

    def __init__(self, message, code, http_status):
        super().__init__(message, code=code)
        self.http_status = http_status


_LOGIN_ERRORS = {
    WeChatErrcode.INVALID_CODE: (401, "invalid_code", "登录凭证无效或已过期，请重新进入小程序登录"),
    WeChatErrcode.CODE_BEEN_USED: (401, "code_used", "登录凭证已被使用，请重新进入小程序登录"),
    WeChatErrcode.RATE_LIMITED: (429, "wechat_rate_limited", "微信登录繁忙，请稍后再试"),
    WeChatErrcode.HIGH_RISK_USER: (403, "wechat_risky_user", "微信判定当前账号存在风险，暂时无法登录"),
}
_PHONE_ERRORS = {
    WeChatErrcode.INVALID_CODE: (400, "invalid_phone_code", "手机号授权已失效，请重新授权手机号"),
    WeChatErrcode.CODE_BEEN_USED: (400, "phone_code_used", "手机号授权已被使用，请重新授权手机号"),
    WeChatErrcode.RATE_LIMITED: (429, "wechat_rate_limited", "微信接口繁忙，请稍后再试"),
    WeChatErrcode.HIGH_RISK_USER: (403, "wechat_risky_user", "微信判定当前账号存在风险，暂时无法绑定"),
}


def _wechat_refused(exc: Exception, table: dict) -> WeChatRefused:
    if isinstance(exc, WeChatUnavailable):
        return WeChatRefused("暂时无法连接微信服务，请稍后再试", "wechat_unavailable", 503)
    errcode = getattr(exc, "errcode", None)
    if errcode in table:
        status, code, message = table[errcode]
        return WeChatRefused(message, code, status)
    logger.warning("Unexpected WeChat errcode %s", errcode)
    return WeChatRefused("微信服务返回错误，请稍后再试", "wechat_error", 502)


def hash_token(raw: str) -> str:
    """Hex SHA-256 of a bearer token (what the database stores)."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue_token(user: WeChatUser, ttl_seconds: int) -> tuple[str, ApiToken]:
    """Create an API token for the user; returns the token (shown once) and its row."""
    raw = secrets.token_urlsafe(32)
    now = now_utc()
    row = ApiToken(wechat_user=user, token_hash=hash_token(raw), created_dt=now,
                   expires_dt=now + timedelta(seconds=ttl_seconds))
    db.session.add(row)
    db.session.flush()
    return raw, row


def login_with_code(wechat, code: str, ttl_seconds: int) -> tuple[str, ApiToken, WeChatUser]:
    """Trade a wx.login() code for our user (created on first login) and a new API token."""
    try:
        session = wechat.code_to_session(code)
    except (WeChatAPIError, WeChatUnavailable) as exc:
        raise _wechat_refused(exc, _LOGIN_ERRORS) from None
    openid, unionid = session["openid"], session.get("unionid")
    user = db.session.execute(sa.select(WeChatUser).where(WeChatUser.openid == openid)).scalar_one_or_none()
    if user is None:
        user = WeChatUser(openid=openid)
        db.session.add(user)
    if unionid:
        user.unionid = unionid
    user.last_login_dt = now_utc()
    db.session.flush()
    raw, token = issue_token(user, ttl_seconds)
    return raw, token, user


def authenticate_token(raw: str) -> ApiToken:
    """The live token row for a bearer token, or AuthFailed (unknown, revoked, expired)."""
    if not raw or len(raw) > 200:
        raise AuthFailed("登录状态无效，请重新登录")
    token = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(raw))
    ).scalar_one_or_none()
    if token is None or token.revoked_dt is not None:
        raise AuthFailed("登录状态无效，请重新登录")
    if token.expires_dt <= now_utc():
        raise AuthFailed("登录已过期，请重新登录", code="token_expired")
    return token


def touch_token(token: ApiToken) -> bool:
    """Record that the token was used (at most every few minutes); True when the row changed."""
    now = now_utc()
    if token.last_used_dt is not None and now - token.last_used_dt < TOUCH_INTERVAL:
        return False
    token.last_used_dt = now
    db.session.flush()
    return True


def revoke_token(token: ApiToken) -> None:
    """Log out: the token stops working at once."""
    if token.revoked_dt is None:
        token.revoked_dt = now_utc()
        db.session.flush()


def active_bindings(user: WeChatUser) -> list[MerchantBinding]:
    """The user's bindings that are not revoked, oldest first."""
    return list(db.session.execute(
        sa.select(MerchantBinding)
        .where(MerchantBinding.wechat_user_id == user.id, MerchantBinding.revoked_dt.is_(None))
        .order_by(MerchantBinding.id)
    ).scalars())


def current_binding(user: WeChatUser, merchant_header: str | None) -> MerchantBinding:
    """The binding a request acts under: X-Merchant-Id when given, else the first active binding."""
    bindings = active_bindings(user)
    if not bindings:
        raise Forbidden("尚未绑定商户，请先用登记的手机号或摊位二维码绑定", code="not_bound")
    if merchant_header is None or not merchant_header.strip():
        return bindings[0]
    try:
        merchant_id = int(merchant_header.strip())
    except ValueError:
        raise InvalidRequest("X-Merchant-Id 应为商户编号（整数）", code="invalid_merchant_header") from None
    for binding in bindings:
        if binding.merchant_id == merchant_id:
            return binding
    raise Forbidden("当前微信未绑定该商户", code="merchant_not_bound")


def _bind(user: WeChatUser, merchant: Merchant, role: BindingRole, via: BindingMethod,
          unit: Unit | None = None) -> MerchantBinding:
    """Create or re-activate the (user, merchant) binding; an owner is never downgraded."""
    binding = db.session.execute(
        sa.select(MerchantBinding).where(MerchantBinding.wechat_user_id == user.id,
                                         MerchantBinding.merchant_id == merchant.id)
    ).scalar_one_or_none()
    if binding is None:
        binding = MerchantBinding(wechat_user=user, merchant=merchant, market_id=merchant.market_id,
                                  role=role, bound_via=via, unit=unit)
        db.session.add(binding)
    elif binding.revoked_dt is not None:
        binding.revoked_dt = None
        binding.revoked_by_id = None
        binding.role, binding.bound_via, binding.unit = role, via, unit
    elif role == BindingRole.owner and binding.role != BindingRole.owner:
        binding.role, binding.bound_via = role, via
    db.session.flush()
    return binding


def bind_by_phone(user: WeChatUser, wechat, phone_code: str) -> list[MerchantBinding]:
    """Bind the user as owner of every merchant registered with the phone WeChat vouches for."""
    try:
        phone = wechat.get_phone_number(phone_code)
    except (WeChatAPIError, WeChatUnavailable) as exc:
        raise _wechat_refused(exc, _PHONE_ERRORS) from None
    merchants = db.session.execute(
        sa.select(Merchant).where(sa.or_(Merchant.phone == phone, Merchant.phone2 == phone)).order_by(Merchant.id)
    ).scalars().all()
    if not merchants:
        raise NotFound("该手机号未登记为商户联系电话，请联系市场管理处核对登记信息，或扫描摊位二维码绑定",
                       code="phone_not_registered")
    return [_bind(user, merchant, BindingRole.owner, BindingMethod.phone) for merchant in merchants]


def bind_by_unit(user: WeChatUser, unit_id: int, market_id: int) -> MerchantBinding:
    """Bind the user as a shop assistant of the merchant holding the unit's current lease."""
    unit = db.session.get(Unit, unit_id)
    if unit is None or unit.market_id != market_id:
        raise NotFound("二维码对应的摊位不存在", code="unit_not_found")
    merchant = db.session.execute(
        sa.select(Merchant)
        .join(Lease, Lease.merchant_id == Merchant.id)
        .join(lease_units, lease_units.c.lease_id == Lease.id)
        .where(lease_units.c.unit_id == unit.id, Lease.status.in_(CURRENT_LEASE_STATUSES))
        .order_by(Lease.start_date.desc(), Lease.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if merchant is None:
        raise NotFound(f"摊位 {unit.code} 当前没有在租商户，无法绑定", code="unit_not_leased")
    return _bind(user, merchant, BindingRole.assistant, BindingMethod.qr, unit=unit)


def revoke_binding(binding: MerchantBinding, revoked_by=None) -> None:
    """Revoke a binding; the user loses access to the merchant on the next request."""
    if binding.revoked_dt is None:
        binding.revoked_dt = now_utc()
        binding.revoked_by_id = getattr(revoked_by, "id", None)
        db.session.flush()


#: Merchant fields a bound owner may change from the mini-program.
SELF_SERVICE_FIELDS = ("contact_name", "phone2", "notify_wechat", "notify_sms", "notify_bill",
                       "notify_overdue", "notify_ticket")


def merchant_units(merchant: Merchant) -> list[Unit]:
    """The units of the merchant's current leases, by code."""
    return list(db.session.execute(
        sa.select(Unit)
        .join(lease_units, lease_units.c.unit_id == Unit.id)
        .join(Lease, Lease.id == lease_units.c.lease_id)
        .where(Lease.merchant_id == merchant.id, Lease.status.in_(CURRENT_LEASE_STATUSES))
        .distinct()
        .order_by(Unit.code)
    ).scalars())


def update_merchant_profile(binding: MerchantBinding, changes: dict) -> Merchant:
    """Change the merchant's contact details and notification settings (owners only)."""
    if binding.role != BindingRole.owner:
        raise Forbidden("只有商户负责人可以修改商户资料", code="owner_required")
    unknown = set(changes) - set(SELF_SERVICE_FIELDS)
    if unknown:
        raise Forbidden("这些资料只能由市场管理处修改：" + "、".join(sorted(unknown)), code="field_not_editable")
    merchant = binding.merchant
    for name, value in changes.items():
        if name == "contact_name":
            value = value.strip()
            if not value:
                raise DomainError("联系人不能为空", code="validation_failed")
        if name == "phone2":
            value = (value or "").strip() or None
        setattr(merchant, name, value)
    db.session.flush()
    return merchant
