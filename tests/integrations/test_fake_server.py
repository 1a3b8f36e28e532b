"""The fake itself: state directory, wechat.env, command line, control API, v3 signatures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from app.integrations.fake_wechat import FakeWeChat
from app.integrations.wechat import WeChatMiniProgram

ENV_NAMES = [
    "WECHAT_APPID", "WECHAT_SECRET", "WECHAT_API_BASE", "WECHATPAY_MCHID", "WECHATPAY_API_BASE",
    "WECHATPAY_APIV3_KEY", "WECHATPAY_PRIVATE_KEY_PATH", "WECHATPAY_CERT_SERIAL", "WECHATPAY_PUBLIC_KEY_PATH",
    "WECHATPAY_PUBLIC_KEY_ID",
]


def _read_env(path: Path) -> dict[str, str]:
    """Parse KEY=value lines."""
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)


def test_state_dir_holds_keys_and_settings_and_is_reloaded(tmp_path):
    with FakeWeChat(tmp_path) as first:
        env = _read_env(tmp_path / "wechat.env")
        base_url = first.base_url
    with FakeWeChat(tmp_path) as second:
        reloaded = _read_env(tmp_path / "wechat.env")

    assert set(ENV_NAMES) <= set(env)
    assert env["WECHAT_API_BASE"] == base_url + "/" and env["WECHATPAY_API_BASE"] == base_url
    assert env["WECHAT_APPID"].startswith("wx") and len(env["WECHATPAY_APIV3_KEY"]) == 32
    assert env["WECHATPAY_PUBLIC_KEY_ID"].startswith("PUB_KEY_ID_0112")
    for name in ("WECHATPAY_PRIVATE_KEY_PATH", "WECHATPAY_PUBLIC_KEY_PATH"):
        assert os.path.isabs(env[name]) and Path(env[name]).is_file()
    assert json.loads((tmp_path / "config.json").read_text())["WECHAT_APPID"] == env["WECHAT_APPID"]
    assert (tmp_path / "platform_cert.pem").is_file()
    # same account after a restart; only the address may change
    same = ("WECHAT_APPID", "WECHAT_SECRET", "WECHATPAY_MCHID", "WECHATPAY_APIV3_KEY", "WECHATPAY_CERT_SERIAL",
            "WECHATPAY_PUBLIC_KEY_ID")
    assert {k: reloaded[k] for k in same} == {k: env[k] for k in same}
    assert second.creds.platform_cert_serial == first.creds.platform_cert_serial


def test_command_line_serves_until_stopped(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "app.integrations.fake_wechat", "--port", "0", "--state-dir", str(tmp_path), "--quiet"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first_line = process.stdout.readline().strip()
        assert first_line.startswith("Fake WeChat listening on http://127.0.0.1:")
        base_url = first_line.rsplit(" ", 1)[1]
        config = requests.get(base_url + "/_fake/config", timeout=5).json()
        assert config["WECHATPAY_API_BASE"] == base_url
        assert config["WECHAT_APPID"] == _read_env(tmp_path / "wechat.env")["WECHAT_APPID"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_control_api_over_http(fake, pay, receiver, new_no):
    base = fake.base_url
    wechat = WeChatMiniProgram.from_env(fake.settings)
    out_trade_no = new_no()
    pay.create_jsapi_order(out_trade_no, "电费", 1500, "o-http-1")

    assert requests.post(base + "/_fake/codes", json={"code": "http-code-1", "openid": "o-http-1"}).status_code == 200
    assert requests.post(base + "/_fake/phones", json={"code": "http-phone", "phone": "13100000000"}).ok
    forged = requests.post(base + f"/_fake/pay/{out_trade_no}", json={"tamper": "wrong_key"}).json()
    paid = requests.post(base + f"/_fake/pay/{out_trade_no}", json={}).json()
    unknown = requests.post(base + "/_fake/pay/NO-SUCH-ORDER", json={})
    bad_tamper = requests.post(base + f"/_fake/pay/{out_trade_no}", json={"tamper": "nonsense"})

    assert wechat.code_to_session("http-code-1")["openid"] == "o-http-1"
    assert wechat.get_phone_number("http-phone") == "13100000000"
    assert forged["status_code"] == 400 and forged["trade_state"] == "NOTPAY"
    assert paid["status_code"] == 200 and paid["trade_state"] == "SUCCESS"
    assert unknown.status_code == 404 and bad_tamper.status_code == 400
    order = requests.get(base + f"/_fake/orders/{out_trade_no}").json()
    assert order["trade_state"] == "SUCCESS" and order["amount"]["total"] == 1500
    deliveries = requests.get(base + "/_fake/notifications").json()
    assert [d["status_code"] for d in deliveries if d["notify_url"] == receiver.url][-2:] == [400, 200]


def test_control_api_refund_notify_and_messages(fake, pay, receiver, paid_order, new_no):
    base = fake.base_url
    out_refund_no = new_no("R")
    pay.refund(out_refund_no, paid_order, 100, 1000)
    WeChatMiniProgram.from_env(fake.settings).send_subscribe_message("o-http-msg", "TPL-1", {"thing1": "ok"})

    answer = requests.post(base + f"/_fake/refund/{out_refund_no}/notify", json={"repeat": 2}).json()
    messages = requests.get(base + "/_fake/messages", params={"touser": "o-http-msg"}).json()

    assert [d["status_code"] for d in answer["deliveries"]] == [200, 200]
    assert answer["status"] == "SUCCESS"
    assert pay.query_refund(out_refund_no)["status"] == "SUCCESS"
    assert messages and messages[-1]["data"] == {"thing1": {"value": "ok"}}


def test_unsigned_v3_request_is_401_and_the_answer_is_signed(fake):
    answer = requests.post(fake.base_url + "/v3/pay/transactions/jsapi", json={"appid": fake.creds.appid})

    assert answer.status_code == 401
    assert answer.json()["code"] == "SIGN_ERROR"
    assert answer.headers["Wechatpay-Serial"] == fake.creds.public_key_id
    assert answer.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"


def test_app_notify_url_overrides_the_order_notify_url(fake, pay, receiver, new_no):
    other = new_no()
    pay.create_jsapi_order(other, "电费", 100, "o-payer-1")
    original = fake.app_notify_url
    fake.configure(app_notify_url=receiver.url + "?override=1")
    try:
        fake.pay(other)
    finally:
        fake.configure(app_notify_url=original or "")

    assert receiver.last()["path"] == "/wechatpay/notify?override=1"
