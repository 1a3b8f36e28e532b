"""The WeCom group robot adapter against the fake robot over loopback HTTP."""
from __future__ import annotations

import logging

import pytest
import requests

from app.integrations.fake_wechat import FakeWeChat
from app.integrations.wecom import WeComAPIError, WeComRobot, WeComUnavailable, redact


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with FakeWeChat(tmp_path_factory.mktemp("fake_wecom")) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake):
    fake.clear_wecom()
    fake.configure_wecom(rate_limit_per_minute=20)
    yield


def test_markdown_is_received_as_sent(fake):
    answer = WeComRobot(fake.wecom_webhook_url).send_markdown("## 【财务告警】测试\n> 订单号：P123 金额 ¥49.99")
    assert answer == {"errcode": 0, "errmsg": "ok"}
    [message] = fake.wecom_messages()
    assert message["msgtype"] == "markdown" and message["content"] == "## 【财务告警】测试\n> 订单号：P123 金额 ¥49.99"
    over_http = requests.get(f"{fake.base_url}/_fake/wecom/messages", timeout=5).json()
    assert over_http == [message]


def test_text_with_mentioned_mobiles(fake):
    WeComRobot(fake.wecom_webhook_url).send_text("退款失败", ["13800001111", "@all"])
    [message] = fake.wecom_messages()
    assert message["msgtype"] == "text" and message["mentioned_mobile_list"] == ["13800001111", "@all"]


def test_long_markdown_is_cut_to_4096_bytes(fake):
    WeComRobot(fake.wecom_webhook_url).send_markdown("告" * 3000)
    [message] = fake.wecom_messages()
    assert len(message["content"].encode("utf-8")) <= 4096 and message["content"].endswith("…")


def test_wrong_key_is_93000_and_the_key_is_not_logged(fake, caplog):
    url = fake.wecom_webhook_url.replace(fake.wecom_key, "0000-wrong-key")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(WeComAPIError) as caught:
        WeComRobot(url).send_markdown("x")
    assert caught.value.errcode == 93000
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("app.")]
    assert ours and not any("0000-wrong-key" in m for m in ours)
    assert fake.wecom_messages() == []


def test_the_fake_checks_messages_like_the_robot(fake):
    def post(body):
        return requests.post(fake.wecom_webhook_url, json=body, timeout=5).json()["errcode"]

    assert post({"msgtype": "voicemail", "voicemail": {"content": "x"}}) == 40008
    assert post({"msgtype": "markdown"}) == 40008
    assert post({"msgtype": "text", "text": {"content": " "}}) == 44004
    assert post({"msgtype": "text", "text": {"content": "x" * 2049}}) == 40058
    assert post({"msgtype": "markdown", "markdown": {"content": "x", "mentioned_mobile_list": ["138"]}}) == 40058
    assert requests.post(fake.wecom_webhook_url, data=b"not json", timeout=5).json()["errcode"] == 47001
    assert fake.wecom_messages() == []


def test_twenty_messages_a_minute_then_45009(fake):
    robot = WeComRobot(fake.wecom_webhook_url)
    for i in range(20):
        robot.send_text(f"第 {i} 条")
    with pytest.raises(WeComAPIError) as caught:
        robot.send_text("第 21 条")
    assert caught.value.errcode == 45009 and caught.value.is_rate_limited
    assert len(fake.wecom_messages()) == 20


def test_robot_down_is_unavailable_without_the_key():
    url = "http://127.0.0.1:9/cgi-bin/webhook/send?key=secret-key-123"
    with pytest.raises(WeComUnavailable) as caught:
        WeComRobot(url, timeout=2).send_markdown("x")
    assert "secret-key-123" not in str(caught.value)
    assert "secret-key-123" not in repr(WeComRobot(url)) and redact(url).endswith("?key=***")


def test_wechat_env_carries_the_webhook_url(fake):
    env = fake.creds.path("wechat.env")
    lines = dict(line.split("=", 1) for line in open(env, encoding="utf-8").read().splitlines())
    assert lines["FINANCE_ALERT_WEBHOOK_URL"] == fake.wecom_webhook_url
    config = requests.get(f"{fake.base_url}/_fake/config", timeout=5).json()
    assert config["FINANCE_ALERT_WEBHOOK_URL"] == fake.wecom_webhook_url
