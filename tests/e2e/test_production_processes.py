"""The production process layout, for real: gunicorn (2 workers, deploy/gunicorn.conf.py, MARKET_ENV=production)
and an RQ worker process, on PostgreSQL and Redis, with the fake WeChat server.

A merchant logs in and binds over HTTP, pays a bill through WeChat Pay (the fake delivers the signed,
encrypted notification to gunicorn), and a notification 1 fen short raises a finance alert that a
separate `rq worker` process delivers to the WeCom group robot. Runs when DATABASE_URL is PostgreSQL
and REDIS_URL is set; under CI (REQUIRE_REAL_SERVICES=1) it must run.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill, Payment
from app.models.alerts import FinanceAlert
from app.models.enums import BillStatus
from tests.wechatpay_support import NOTIFY_PATH, make_bill

ROOT = Path(__file__).resolve().parents[2]


def _real_services() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith("postgresql") and bool(os.environ.get("REDIS_URL"))


@pytest.fixture
def require_real_services():
    if not _real_services():
        if os.environ.get("REQUIRE_REAL_SERVICES") == "1":
            pytest.fail("the production-process test needs DATABASE_URL (PostgreSQL) and REDIS_URL under CI")
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL and REDIS_URL (the production services)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _executable(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


@pytest.fixture
def production_env(require_real_services, app, fake_wechat):
    """The environment a production deployment gives gunicorn and the RQ workers."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("WECHAT", "FINANCE_ALERT", "PYTEST", "MP_"))
    }
    env.update({key: str(value) for key, value in fake_wechat.settings.items()})
    env.update(
        MARKET_ENV="production", SECRET_KEY=uuid.uuid4().hex * 2, SESSION_COOKIE_SECURE="0",
        BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2", GUNICORN_THREADS="2",
        WECHATPAY_NOTIFY_URL=base + NOTIFY_PATH, PUBLIC_BASE_URL=base,
        FINANCE_ALERT_WEBHOOK_URL=fake_wechat.wecom_webhook_url, PYTHONPATH=str(ROOT),
    )
    return {"env": env, "base": base}


@pytest.fixture
def gunicorn(production_env, tmp_path):
    """gunicorn serving run:app with the production settings; yields the base URL."""
    log = open(tmp_path / "gunicorn.log", "w+")
    process = subprocess.Popen(
        [_executable("gunicorn"), "-c", "deploy/gunicorn.conf.py", "run:app"],
        cwd=ROOT, env=production_env["env"], stdout=log, stderr=subprocess.STDOUT,
    )
    base = production_env["base"]
    try:
        for _ in range(150):
            if process.poll() is not None:
                break
            try:
                if requests.get(base + "/api/mp/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not answer within 30 s")
        if process.poll() is not None:
            log.seek(0)
            pytest.fail("gunicorn exited:\n" + log.read()[-3000:])
        yield base
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _run_worker(env: dict, queue: str) -> subprocess.CompletedProcess:
    """One `rq worker --burst` process over a queue, as the production worker units run it."""
    return subprocess.run(
        [_executable("rq"), "worker", "--burst", "--url", env["REDIS_URL"], queue],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def _login_and_bind(base: str, fake, merchant) -> dict:
    api = base + "/api/mp/v1"
    login = requests.post(api + "/auth/login", json={"code": f"code-prod-{uuid.uuid4().hex[:12]}"}, timeout=10)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    phone_code = f"pc-prod-{uuid.uuid4().hex}"
    fake.register_phone(phone_code, merchant.phone)
    bind = requests.post(api + "/auth/bind", json={"phone_code": phone_code}, headers=headers, timeout=10)
    assert bind.status_code == 200 and bind.json()["is_bound"] is True, bind.text
    return headers


def test_pay_flow_and_alert_delivery_across_gunicorn_workers_and_an_rq_worker(
        market, fake_wechat, gunicorn, production_env):
    merchant = market.merchants_a[0]
    paid_bill, short_bill = make_bill(merchant, 23456), make_bill(merchant, 7800)
    db.session.commit()
    api = gunicorn + "/api/mp/v1"
    headers = _login_and_bind(gunicorn, fake_wechat, merchant)

    unpaid = requests.get(api + "/bills?status=unpaid", headers=headers, timeout=10).json()
    assert {item["id"] for item in unpaid["items"]} == {paid_bill.id, short_bill.id}

    order = requests.post(api + "/payments", json={"bill_ids": [paid_bill.id]}, headers=headers, timeout=10)
    assert order.status_code == 201, order.text
    delivered = fake_wechat.pay(order.json()["out_trade_no"], repeat=3)  # WeChat's retries included
    assert [d["status_code"] for d in delivered["deliveries"]] == [204, 204, 204]
    detail = requests.get(api + f"/bills/{paid_bill.id}", headers=headers, timeout=10).json()
    assert detail["status"] == "paid" and detail["receipt_no"]
    receipt = requests.get(api + f"/bills/{paid_bill.id}/receipt", headers=headers, timeout=30)
    assert receipt.status_code == 200 and receipt.content.startswith(b"%PDF")

    short = requests.post(api + "/payments", json={"bill_ids": [short_bill.id]}, headers=headers, timeout=10)
    fake_wechat.clear_wecom()
    answer = fake_wechat.pay(short.json()["out_trade_no"], tamper="amount_short")
    assert [d["status_code"] for d in answer["deliveries"]] == [204]

    worker = _run_worker(production_env["env"], "notifications")
    assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]

    db.session.expire_all()
    assert db.session.get(Bill, paid_bill.id).status == BillStatus.paid
    assert db.session.get(Bill, short_bill.id).status == BillStatus.issued
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1
    alert = db.session.scalars(sa.select(FinanceAlert)).one()
    assert alert.wecom_status.value == "sent" and alert.wecom_attempts == 1
    messages = [m for m in fake_wechat.wecom_messages() if short.json()["out_trade_no"] in m["content"]]
    assert len(messages) == 1 and "7799" in messages[0]["content"]
