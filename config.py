"""Configuration read from environment variables.

MARKET_ENV selects the profile: development (default, SQLite + in-process jobs),
testing, or production (PostgreSQL + Redis, refuses to start without SECRET_KEY).
"""
import os
import secrets
from pathlib import Path

from flask_appbuilder.security.manager import AUTH_DB

BASE_DIR = Path(__file__).resolve().parent


def _bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    APP_NAME = "市场管家"
    APP_ICON = "/static/img/logo.svg"
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'market.sqlite'}"
    )
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    #: None means the embedded default: fakeredis, jobs run in-process.
    REDIS_URL = os.environ.get("REDIS_URL") or None
    MARKET_TIMEZONE = "Asia/Shanghai"

    # Flask-AppBuilder
    AUTH_TYPE = AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    FAB_CREATE_DB = False  # Alembic owns every table, ab_* included
    # Roles are declared in code (app/security.py); no permission rows to sync.
    FAB_UPDATE_PERMS = _bool("FAB_UPDATE_PERMS", False)
    FAB_ADD_SECURITY_API = False
    FAB_API_SWAGGER_UI = True
    FAB_API_MAX_PAGE_SIZE = 200
    FAB_SECURITY_MANAGER_CLASS = "app.security.MarketSecurityManager"
    FAB_INDEX_VIEW = "app.views.home.HomeView"
    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = {
        "zh": {"flag": "cn", "name": "中文"},
        "en": {"flag": "gb", "name": "English"},
    }
    BABEL_TRANSLATION_DIRECTORIES = "translations"
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    RATELIMIT_STORAGE_URI = os.environ.get("REDIS_URL") or "memory://"

    # WeChat mini-program (login, phone number); see docs/wechat.md and docs/api.md
    WECHAT_APPID = os.environ.get("WECHAT_APPID", "")
    WECHAT_SECRET = os.environ.get("WECHAT_SECRET", "")
    WECHAT_API_BASE = os.environ.get("WECHAT_API_BASE") or "https://api.weixin.qq.com/"
    #: Lifetime of a mini-program API token, in seconds (default 30 days).
    MP_TOKEN_TTL_SECONDS = int(os.environ.get("MP_TOKEN_TTL_SECONDS", str(30 * 24 * 3600)))
    #: Lifetime of a stall QR bind token, in seconds (default 30 days).
    MP_BIND_TOKEN_TTL_SECONDS = int(os.environ.get("MP_BIND_TOKEN_TTL_SECONDS", str(30 * 24 * 3600)))
    #: Rate limit of POST /api/mp/v1/auth/login per client IP. A market's merchants often share one
    #: Wi-Fi (one public address), so the limit is per address, not per person.
    MP_LOGIN_RATE_LIMIT = os.environ.get("MP_LOGIN_RATE_LIMIT", "60/minute")
    #: Reverse proxies in front of the app (nginx: 1). Their X-Forwarded-For/-Proto/-Host are trusted
    #: that many hops deep, so rate limits and logs see the client's address, not the proxy's.
    PROXY_FIX_HOPS = int(os.environ.get("PROXY_FIX_HOPS", "0"))
    #: Subscribe-message template id (订阅消息模板 ID, from the mini-program admin console) of ticket
    #: progress messages to merchants (docs/notifications.md). Empty: the messages are stored as skipped.
    WECHAT_TEMPLATE_TICKET_PROGRESS = os.environ.get("WECHAT_TEMPLATE_TICKET_PROGRESS", "")

    # WeChat Pay API v3 (see docs/wechat-pay.md). WECHAT_ENV_FILE: a wechat.env (KEY=VALUE lines, e.g. the
    # fake server's var/fake_wechat/wechat.env) whose WECHAT_*/WECHATPAY_* values fill what the environment lacks.
    WECHAT_ENV_FILE = os.environ.get("WECHAT_ENV_FILE", "")
    WECHATPAY_MCHID = os.environ.get("WECHATPAY_MCHID", "")
    WECHATPAY_API_BASE = os.environ.get("WECHATPAY_API_BASE", "")
    WECHATPAY_APIV3_KEY = os.environ.get("WECHATPAY_APIV3_KEY", "")
    WECHATPAY_PRIVATE_KEY_PATH = os.environ.get("WECHATPAY_PRIVATE_KEY_PATH", "")
    WECHATPAY_CERT_SERIAL = os.environ.get("WECHATPAY_CERT_SERIAL", "")
    WECHATPAY_PUBLIC_KEY_PATH = os.environ.get("WECHATPAY_PUBLIC_KEY_PATH", "")
    WECHATPAY_PUBLIC_KEY_ID = os.environ.get("WECHATPAY_PUBLIC_KEY_ID", "")
    WECHATPAY_PLATFORM_CERT_DIR = os.environ.get("WECHATPAY_PLATFORM_CERT_DIR", "")
    WECHATPAY_NOTIFY_URL = os.environ.get("WECHATPAY_NOTIFY_URL", "")
    WECHATPAY_REFUND_NOTIFY_URL = os.environ.get("WECHATPAY_REFUND_NOTIFY_URL", "")
    #: Minutes a JSAPI order stays payable (WeChat's prepay_id lasts 2 hours).
    WECHATPAY_ORDER_TTL_MINUTES = int(os.environ.get("WECHATPAY_ORDER_TTL_MINUTES", "30"))
    #: Rate limit of POST /api/mp/v1/payments per merchant user.
    MP_PAYMENT_RATE_LIMIT = os.environ.get("MP_PAYMENT_RATE_LIMIT", "10/minute")

    # Finance alerts (docs/alerts.md): the WeCom (企业微信) group robot's full webhook URL, key included
    # (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...; a secret: never log it). Empty: alerts are
    # only shown in the back office. When unset here, a FINANCE_ALERT_* line of WECHAT_ENV_FILE is used.
    FINANCE_ALERT_WEBHOOK_URL = os.environ.get("FINANCE_ALERT_WEBHOOK_URL", "")
    #: Comma-separated mobile numbers @-mentioned in each alert (sent as a text message); "@all" for everyone.
    FINANCE_ALERT_MENTION_MOBILES = os.environ.get("FINANCE_ALERT_MENTION_MOBILES", "")

    # Tickets (工单, docs/tickets.md): the largest photo in bytes, the lifetime of a signed photo URL
    # in seconds, and the rate limit of POST /api/mp/v1/tickets per WeChat user.
    TICKET_PHOTO_MAX_BYTES = int(os.environ.get("TICKET_PHOTO_MAX_BYTES", str(5 * 1024 * 1024)))
    TICKET_PHOTO_URL_TTL_SECONDS = int(os.environ.get("TICKET_PHOTO_URL_TTL_SECONDS", "3600"))
    TICKET_CREATE_RATE_LIMIT = os.environ.get("TICKET_CREATE_RATE_LIMIT", "20/hour")

    # Demo / seed
    DEMO_ALLOWED = True

    # Public base URL used in QR codes and receipt verification links
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    @classmethod
    def init(cls):
        """Fill values that depend on the environment at start-up."""
        cls.load_wechat_env()
        if not cls.SECRET_KEY:
            key_file = BASE_DIR / "var" / "secret_key"
            key_file.parent.mkdir(parents=True, exist_ok=True)
            if not key_file.exists():
                key_file.write_text(secrets.token_hex(32))
            cls.SECRET_KEY = key_file.read_text().strip()

    @classmethod
    def load_wechat_env(cls):
        """Fill empty WECHAT_*/WECHATPAY_* settings from WECHAT_ENV_FILE, if it is set and exists."""
        path = os.environ.get("WECHAT_ENV_FILE")
        if not path or not Path(path).is_file():
            return
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name.startswith(("WECHAT_", "WECHATPAY_")) and not os.environ.get(name):
                setattr(cls, name, value.strip())


class DevelopmentConfig(Config):
    DEBUG = _bool("FLASK_DEBUG", False)


class TestingConfig(Config):
    TESTING = True
    WTF_CSRF_ENABLED = False
    SECRET_KEY = "test-secret-key-not-for-production"
    RATELIMIT_ENABLED = False
    # Fast hashing so the suite is not dominated by scrypt; never used outside tests.
    FAB_PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "sqlite://")

    @classmethod
    def init(cls):
        return None


class ProductionConfig(Config):
    DEBUG = False
    DEMO_ALLOWED = False
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)

    @classmethod
    def init(cls):
        if not os.environ.get("SECRET_KEY"):
            raise RuntimeError("SECRET_KEY must be set in production (MARKET_ENV=production)")
        if not os.environ.get("DATABASE_URL"):
            raise RuntimeError("DATABASE_URL must be set in production")
        cls.SECRET_KEY = os.environ["SECRET_KEY"]
        cls.load_wechat_env()


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name=None):
    """Return the configuration class for MARKET_ENV (or the given name)."""
    name = name or os.environ.get("MARKET_ENV", "development")
    try:
        cfg = CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"unknown MARKET_ENV {name!r}; use one of {sorted(CONFIGS)}")
    cfg.init()
    return cfg
