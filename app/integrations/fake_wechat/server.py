"""FakeWeChat: one loopback HTTP server speaking the mini-program API, WeChat Pay v3 and a control API."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from . import control_api, pay_api, wechat_api, wecom_api
from .credentials import Credentials
from .notifications import TAMPERS, build_notification, deliver
from .protocol import (
    SIGNATURE_TYPE,
    nonce,
    now_cst,
    parse_authorization,
    rsa_sign,
    rsa_verify,
    signed_message,
)
from .state import FakeState, Order, Refund
from .web import FakeError, json_response

logger = logging.getLogger(__name__)

PLATFORM_MODES = ("public_key", "certificate")
#: Allowed gap between the merchant's Authorization timestamp and the fake's clock.
AUTH_MAX_SKEW_SECONDS = 300
REFUND_EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭"),
}

# (endpoint name, rule, methods, handler, kind). kind: "wechat" plain, "pay" signed v3,
# "bill_file" v3 without answer signature, "control" the /_fake/ API.
_ROUTES = [
    ("token", "/cgi-bin/token", ["GET"], wechat_api.access_token, "wechat"),
    ("jscode2session", "/sns/jscode2session", ["GET"], wechat_api.code_to_session, "wechat"),
    ("phone", "/wxa/business/getuserphonenumber", ["POST"], wechat_api.phone_number, "wechat"),
    ("subscribe", "/cgi-bin/message/subscribe/send", ["POST"], wechat_api.subscribe_send, "wechat"),
    ("jsapi", "/v3/pay/transactions/jsapi", ["POST"], pay_api.create_jsapi_order, "pay"),
    ("query", "/v3/pay/transactions/out-trade-no/<out_trade_no>", ["GET"], pay_api.query_order, "pay"),
    ("close", "/v3/pay/transactions/out-trade-no/<out_trade_no>/close", ["POST"], pay_api.close_order, "pay"),
    ("refund", "/v3/refund/domestic/refunds", ["POST"], pay_api.create_refund, "pay"),
    ("refund_query", "/v3/refund/domestic/refunds/<out_refund_no>", ["GET"], pay_api.query_refund, "pay"),
    ("certificates", "/v3/certificates", ["GET"], pay_api.certificates, "pay"),
    ("tradebill", "/v3/bill/tradebill", ["GET"], pay_api.trade_bill, "pay"),
    ("billfile", "/v3/billdownload/file", ["GET"], pay_api.download_bill, "bill_file"),
    *wecom_api.ROUTES,
    *control_api.ROUTES,
]


class FakeWeChat:
    """Fake WeChat + WeChat Pay v3 on 127.0.0.1, with keys kept in state_dir."""

    def __init__(
        self,
        state_dir: str | Path,
        port: int = 0,
        app_notify_url: str | None = None,
        host: str = "127.0.0.1",
        platform_mode: str = "public_key",
    ):
        if platform_mode not in PLATFORM_MODES:
            raise ValueError(f"platform_mode must be one of {PLATFORM_MODES}")
        self.creds = Credentials.load_or_create(state_dir)
        self.state = FakeState()
        self.host = host
        self.port = port
        #: When set, notifications go here instead of the notify_url given with the order or refund.
        self.app_notify_url = app_notify_url
        #: "public_key": sign with the platform public key (Wechatpay-Serial = PUB_KEY_ID_...);
        #: "certificate": sign with the platform certificate's key (Wechatpay-Serial = cert serial).
        self.platform_mode = platform_mode
        #: When True, /v3/bill/tradebill announces a wrong SHA1 (to test the client's hash check).
        self.corrupt_bill_hash = False
        self.notify_timeout = 10.0
        #: The WeCom group robot (finance alerts): its key, what it received, its rate window.
        self.wecom = wecom_api.RobotState()
        self.wecom_key = wecom_api.robot_key(self.creds.apiv3_key)
        self._rogue_key: RSAPrivateKey | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._handlers = {name: (handler, kind) for name, _, _, handler, kind in _ROUTES}
        self._url_map = Map([Rule(rule, endpoint=name, methods=methods) for name, rule, methods, _, _ in _ROUTES])

    # -- server life cycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash); known once started."""
        if self._server is None:
            raise RuntimeError("FakeWeChat is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def wecom_webhook_url(self) -> str:
        """The group robot's webhook URL, key included (FINANCE_ALERT_WEBHOOK_URL); known once started."""
        return f"{self.base_url}{wecom_api.WEBHOOK_PATH}?key={self.wecom_key}"

    @property
    def settings(self) -> dict[str, str]:
        """The wechat.env values for the running server."""
        return self.creds.settings(self.base_url, self.app_notify_url)

    def _bind(self) -> None:
        """Open the listening socket and write wechat.env / config.json with the real port."""
        self._server = make_server(self.host, self.port, self.wsgi_app, threaded=True)
        self.port = self._server.server_port
        self.creds.write_settings(self.base_url, self.app_notify_url,
                                  extra={"FINANCE_ALERT_WEBHOOK_URL": self.wecom_webhook_url,
                                         "WECHAT_TEMPLATE_TICKET_PROGRESS": wechat_api.TICKET_PROGRESS_TEMPLATE_ID})

    def start(self) -> "FakeWeChat":
        """Serve in a background thread."""
        if self._server is not None:
            return self
        self._bind()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-wechat", daemon=True)
        self._thread.start()
        logger.info("Fake WeChat listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "FakeWeChat":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- HTTP plumbing -------------------------------------------------------------------------

    def wsgi_app(self, environ: dict, start_response: Any) -> Any:
        """WSGI entry point."""
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route a request; check and sign WeChat Pay calls."""
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            name, args = adapter.match()
        except NotFound:
            if request.path.startswith("/v3/"):
                return self.sign_response(pay_api.pay_error(404, "NOT_FOUND", "接口不存在"))
            return json_response({"errcode": 404, "errmsg": "not found"}, status=404)
        except MethodNotAllowed as exc:
            return exc.get_response()
        handler, kind = self._handlers[name]
        if kind in ("pay", "bill_file"):
            refused = self.check_merchant_signature(request)
            if refused is not None:
                return self.sign_response(refused)
        try:
            response = handler(self, request, **args)
        except FakeError as exc:
            response = json_response({"error": exc.message}, status=exc.status)
        if kind == "pay":
            use_cert = name == "certificates"
            response = self.sign_response(response, use_certificate=use_cert)
        return response

    def signing_identity(self, use_certificate: bool = False) -> tuple[RSAPrivateKey, str]:
        """The platform key that signs answers and notifications, and the serial announcing it."""
        if use_certificate or self.platform_mode == "certificate":
            return self.creds.platform_cert_key, self.creds.platform_cert_serial
        return self.creds.platform_key, self.creds.public_key_id

    @property
    def rogue_key(self) -> RSAPrivateKey:
        """A key that is not the platform's (for "wrong_key" notifications)."""
        if self._rogue_key is None:
            self._rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._rogue_key

    def sign_response(self, response: Response, use_certificate: bool = False) -> Response:
        """Add Wechatpay-Timestamp/Nonce/Signature/Serial over "timestamp\\nnonce\\nbody\\n"."""
        key, serial = self.signing_identity(use_certificate)
        timestamp, nonce_str = str(int(time.time())), nonce()
        response.headers["Wechatpay-Timestamp"] = timestamp
        response.headers["Wechatpay-Nonce"] = nonce_str
        response.headers["Wechatpay-Signature"] = rsa_sign(key, signed_message(timestamp, nonce_str, response.get_data()))
        response.headers["Wechatpay-Serial"] = serial
        response.headers["Wechatpay-Signature-Type"] = SIGNATURE_TYPE
        response.headers["Request-ID"] = nonce(24)
        return response

    def check_merchant_signature(self, request: Request) -> Response | None:
        """Verify the merchant's Authorization header; a 401 SIGN_ERROR answer when it fails."""
        fields = parse_authorization(request.headers.get("Authorization", ""))
        if not fields or not all(fields.get(k) for k in ("mchid", "nonce_str", "signature", "timestamp", "serial_no")):
            return pay_api.pay_error(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
        if fields["mchid"] != self.creds.mchid:
            return pay_api.pay_error(401, "SIGN_ERROR", "商户号与签名不匹配")
        if fields["serial_no"].upper() != self.creds.merchant_cert_serial:
            return pay_api.pay_error(401, "SIGN_ERROR", "商户证书序列号错误")
        try:
            skew = abs(time.time() - int(fields["timestamp"]))
        except ValueError:
            skew = float("inf")
        if skew > AUTH_MAX_SKEW_SECONDS:
            return pay_api.pay_error(401, "SIGN_ERROR", "签名时间戳与系统时间相差过大")
        uri = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
        message = signed_message(request.method, uri, fields["timestamp"], fields["nonce_str"], request.get_data(cache=True))
        if not rsa_verify(self.creds.merchant_cert.public_key(), message, fields["signature"]):
            return pay_api.pay_error(401, "SIGN_ERROR", "签名错误")
        return None

    # -- control operations (also exposed under /_fake/) ---------------------------------------

    def reset(self) -> None:
        """Forget tokens, codes, messages, orders and refunds; keys and settings stay."""
        self.state.reset()
        self.wecom.reset()
        self.corrupt_bill_hash = False

    def register_code(self, code: str, openid: str, unionid: str | None = None) -> None:
        """Make a wx.login() code log in as openid (once)."""
        with self.state.lock:
            self.state.login_codes[code] = {"openid": openid, "unionid": unionid}
            self.state.used_login_codes.discard(code)

    def register_phone(self, code: str, phone: str, country_code: str = "86") -> None:
        """Make a getPhoneNumber code answer this number (once)."""
        with self.state.lock:
            self.state.phone_codes[code] = {"phone": phone, "country_code": country_code}
            self.state.used_phone_codes.discard(code)

    def expire_tokens(self) -> None:
        """Expire every access token issued so far (the next call gets 42001)."""
        with self.state.lock:
            self.state.expired_tokens.update(self.state.tokens)

    @property
    def tokens_issued(self) -> int:
        """How many access tokens /cgi-bin/token has handed out."""
        return self.state.tokens_issued

    def messages(self) -> list[dict[str, Any]]:
        """Subscribe messages received, oldest first."""
        with self.state.lock:
            return [dict(m) for m in self.state.messages]

    def clear_messages(self) -> None:
        """Forget the recorded subscribe messages."""
        with self.state.lock:
            self.state.messages.clear()

    def wecom_messages(self) -> list[dict[str, Any]]:
        """Group robot messages accepted, oldest first."""
        with self.wecom.lock:
            return [dict(m) for m in self.wecom.messages]

    def clear_wecom(self) -> None:
        """Forget the robot's messages and its rate window (the next 20 messages in a minute pass)."""
        self.wecom.reset()

    def configure_wecom(self, rate_limit_per_minute: int | None = None) -> dict[str, Any]:
        """Change the robot's rate limit (default 20 a minute); returns the robot settings."""
        if rate_limit_per_minute is not None:
            if type(rate_limit_per_minute) is not int or rate_limit_per_minute < 0:
                raise FakeError(400, "rate_limit_per_minute must be a non-negative integer")
            self.wecom.rate_limit_per_minute = rate_limit_per_minute
        return {"webhook_url": self.wecom_webhook_url, "rate_limit_per_minute": self.wecom.rate_limit_per_minute}

    def orders(self) -> list[dict[str, Any]]:
        """Every order as the query API shows it, plus its prepay_id."""
        with self.state.lock:
            return [{**o.view(), "prepay_id": o.prepay_id} for o in self.state.orders.values()]

    def order(self, out_trade_no: str) -> dict[str, Any]:
        """One order as the query API shows it."""
        with self.state.lock:
            order = self._order(out_trade_no)
            return {**order.view(), "prepay_id": order.prepay_id}

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund as the refund query API shows it."""
        with self.state.lock:
            return [r.view() for r in self.state.refunds.values()]

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification delivery attempted, with the app's answers."""
        with self.state.lock:
            return list(self.state.deliveries)

    def _order(self, out_trade_no: str) -> Order:
        """Find an order or raise FakeError(404)."""
        order = self.state.orders.get(out_trade_no)
        if order is None:
            raise FakeError(404, f"no order {out_trade_no!r}")
        return order

    def _refund(self, out_refund_no: str) -> Refund:
        """Find a refund or raise FakeError(404)."""
        refund = self.state.refunds.get(out_refund_no)
        if refund is None:
            raise FakeError(404, f"no refund {out_refund_no!r}")
        return refund

    @staticmethod
    def _check_tamper(tamper: str | None) -> None:
        """Refuse an unknown tamper name."""
        if tamper is not None and tamper not in TAMPERS:
            raise FakeError(400, f"unknown tamper {tamper!r}; known: {', '.join(sorted(TAMPERS))}")

    def build_pay_notification(self, out_trade_no: str, tamper: str | None = None) -> tuple[dict[str, str], bytes]:
        """Headers and body of the TRANSACTION.SUCCESS notification for an order (state unchanged)."""
        self._check_tamper(tamper)
        with self.state.lock:
            order = self._order(out_trade_no)
            shown = replace(order, trade_state="SUCCESS", success_dt=order.success_dt or now_cst())
            resource = shown.view()
        return build_notification(
            self, notification_id=order.notification_id, event_type="TRANSACTION.SUCCESS", summary="支付成功",
            original_type="transaction", resource=resource, tamper=tamper,
        )

    def pay(
        self,
        out_trade_no: str,
        tamper: str | None = None,
        repeat: int = 1,
        notify: bool = True,
        notify_url: str | None = None,
    ) -> dict[str, Any]:
        """The payer pays: mark the order SUCCESS and POST the notification to the app.

        With a tamper the order is left as it was (the notification is a forgery or a corruption).
        Paying a paid order again only re-sends its notification (same id), as WeChat's retries do.
        """
        self._check_tamper(tamper)
        with self.state.lock:
            order = self._order(out_trade_no)
            if order.trade_state == "CLOSED":
                raise FakeError(409, "order is closed")
            if not order.is_paid and order.time_expire is not None and order.time_expire < now_cst():
                raise FakeError(409, "order has expired (time_expire)")
            if tamper is None and order.trade_state == "NOTPAY":
                order.trade_state, order.success_dt = "SUCCESS", now_cst()
            url = notify_url or self.app_notify_url or order.notify_url
            result: dict[str, Any] = {"out_trade_no": out_trade_no, "trade_state": order.trade_state}
            if order.is_paid:
                result["transaction_id"] = order.transaction_id
        if notify:
            result.update(
                deliver(self, url, lambda: self.build_pay_notification(out_trade_no, tamper), repeat,
                        "TRANSACTION.SUCCESS", tamper)
            )
        return result

    def request_payment(self, params: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Play wx.requestPayment: check paySign with the merchant key, then pay the prepay_id's order."""
        needed = ("timeStamp", "nonceStr", "package", "signType", "paySign")
        if not all(isinstance(params.get(k), str) and params[k] for k in needed):
            raise FakeError(400, f"requestPayment needs {', '.join(needed)}")
        if params["signType"] != "RSA" or not params["package"].startswith("prepay_id="):
            raise FakeError(400, "signType must be RSA and package prepay_id=...")
        message = signed_message(self.creds.appid, params["timeStamp"], params["nonceStr"], params["package"])
        if not rsa_verify(self.creds.merchant_cert.public_key(), message, params["paySign"]):
            raise FakeError(400, "paySign does not verify with the merchant certificate")
        prepay_id = params["package"][len("prepay_id="):]
        with self.state.lock:
            matches = [o for o in self.state.orders.values() if o.prepay_id == prepay_id]
        if not matches:
            raise FakeError(404, "unknown prepay_id")
        return self.pay(matches[0].out_trade_no, **options)

    def build_refund_notification(
        self, out_refund_no: str, status: str = "SUCCESS", tamper: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the REFUND.* notification for a refund (state unchanged)."""
        self._check_tamper(tamper)
        if status not in REFUND_EVENTS:
            raise FakeError(400, f"status must be one of {', '.join(REFUND_EVENTS)}")
        with self.state.lock:
            refund = self._refund(out_refund_no)
            shown = refund
            if refund.status != status:
                shown = replace(refund, status=status, success_dt=now_cst() if status == "SUCCESS" else None)
            resource = shown.notification_view(self.creds.mchid)
        event_type, summary = REFUND_EVENTS[status]
        return build_notification(
            self, notification_id=refund.notification_id, event_type=event_type, summary=summary,
            original_type="refund", resource=resource, tamper=tamper,
        )

    def notify_refund(
        self,
        out_refund_no: str,
        status: str = "SUCCESS",
        tamper: str | None = None,
        repeat: int = 1,
        notify: bool = True,
        notify_url: str | None = None,
    ) -> dict[str, Any]:
        """Settle a PROCESSING refund as SUCCESS / ABNORMAL / CLOSED and POST the REFUND.* notification."""
        self._check_tamper(tamper)
        if status not in REFUND_EVENTS:
            raise FakeError(400, f"status must be one of {', '.join(REFUND_EVENTS)}")
        with self.state.lock:
            refund = self._refund(out_refund_no)
            if tamper is None and refund.status == "PROCESSING":
                refund.status = status
                refund.success_dt = now_cst() if status == "SUCCESS" else None
            elif tamper is None and refund.status != status:
                raise FakeError(409, f"refund is already {refund.status}")
            url = notify_url or self.app_notify_url or refund.notify_url
            result: dict[str, Any] = {"out_refund_no": out_refund_no, "status": refund.status}
        if notify:
            if not url:
                raise FakeError(400, "no notify_url: the refund was created without one and no override is set")
            result.update(
                deliver(self, url, lambda: self.build_refund_notification(out_refund_no, status, tamper), repeat,
                        REFUND_EVENTS[status][0], tamper)
            )
        return result

    def configure(self, platform_mode: str | None = None, corrupt_bill_hash: bool | None = None,
                  app_notify_url: str | None = None) -> dict[str, Any]:
        """Change how the fake behaves; returns the current settings."""
        if platform_mode is not None:
            if platform_mode not in PLATFORM_MODES:
                raise FakeError(400, f"platform_mode must be one of {PLATFORM_MODES}")
            self.platform_mode = platform_mode
        if corrupt_bill_hash is not None:
            self.corrupt_bill_hash = bool(corrupt_bill_hash)
        if app_notify_url is not None:
            self.app_notify_url = app_notify_url or None
        return {
            "platform_mode": self.platform_mode,
            "corrupt_bill_hash": self.corrupt_bill_hash,
            "app_notify_url": self.app_notify_url,
        }
