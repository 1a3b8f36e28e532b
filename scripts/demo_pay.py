#!/usr/bin/env python
"""Walk the whole WeChat Pay flow against a running demo (`make run`): what the mini-program and WeChat do.

    .venv/bin/python scripts/demo_pay.py [--app http://127.0.0.1:5000] [--fake http://127.0.0.1:9100]
                                          [--phone 13xxxxxxxxx] [--openid OPENID]

1. POST /api/mp/v1/auth/login {"code": <a fresh wx.login code>}  (registered for --openid on the fake)
2. POST /api/mp/v1/auth/bind  {"phone_code": <a fresh code>}      (registered for the phone on the fake;
                                                                   binds the merchants registered with it)
3. GET  /api/mp/v1/bills?status=unpaid
4. POST /api/mp/v1/payments   {"bill_ids": [...]}              -> wx.requestPayment parameters
5. POST <fake>/_fake/request_payment <those parameters>        (the payer pays; WeChat notifies the app)
6. GET  /api/mp/v1/bills/<id>                                  -> status "paid"

Without --phone it picks a demo merchant with unpaid bills from the app's database (run it from the
repository, with the same DATABASE_URL as the app). Login and phone codes work once each, so it
registers fresh ones on the fake (POST /_fake/codes, /_fake/phones): it can run any number of times,
also after the curl walk-through in docs/wechat-pay.md. Exit 0 when the bills ended up paid.
"""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for `app`


def _show(step: str, resp: requests.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        body = {"raw": resp.text[:300]}
    print(f"\n== {step}: HTTP {resp.status_code}")
    print(json.dumps(body, ensure_ascii=False, indent=2)[:1500])
    if resp.status_code >= 400:
        sys.exit(f"{step} failed")
    return body


def _phone_with_unpaid_bills() -> str:
    """A demo merchant's phone whose merchant has unpaid bills (reads the app's database)."""
    import sqlalchemy as sa

    from app import create_app
    from app.extensions import db
    from app.models import Bill, Merchant
    from app.models.enums import OPEN_BILL_STATUSES

    with create_app().app_context():
        phone = db.session.scalar(
            sa.select(Merchant.phone).join(Bill, Bill.merchant_id == Merchant.id)
            .where(Bill.status.in_(OPEN_BILL_STATUSES), Merchant.phone.is_not(None)).order_by(Bill.id).limit(1)
        )
    if not phone:
        sys.exit("No unpaid bills left in the demo: bill the current month, e.g. "
                 "`.venv/bin/flask market bill --market JJ --period YYYY-MM` (this month), or pass --phone")
    return phone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="http://127.0.0.1:5000")
    parser.add_argument("--fake", default="http://127.0.0.1:9100")
    parser.add_argument("--phone", default=None)
    parser.add_argument("--openid", default=None, help="the payer's openid (default: a new one each run)")
    parser.add_argument("--bills", type=int, default=2, help="how many unpaid bills to pay together")
    args = parser.parse_args()
    api = args.app.rstrip("/") + "/api/mp/v1"
    fake = args.fake.rstrip("/")
    openid = args.openid or f"demo-pay-{uuid.uuid4().hex[:12]}"
    phone = args.phone or _phone_with_unpaid_bills()
    login_code, phone_code = f"demo-pay-{uuid.uuid4().hex[:12]}", f"demo-phone-{uuid.uuid4().hex[:12]}"
    requests.post(f"{fake}/_fake/codes", json={"code": login_code, "openid": openid}, timeout=10).raise_for_status()
    requests.post(f"{fake}/_fake/phones", json={"code": phone_code, "phone": phone}, timeout=10).raise_for_status()

    login = _show("login", requests.post(f"{api}/auth/login", json={"code": login_code}, timeout=10))
    auth = {"Authorization": f"Bearer {login['token']}"}
    _show("bind", requests.post(f"{api}/auth/bind", json={"phone_code": phone_code}, headers=auth, timeout=10))
    bills = _show("unpaid bills", requests.get(f"{api}/bills", params={"status": "unpaid"}, headers=auth, timeout=10))
    chosen = [b["id"] for b in bills["items"][: args.bills]]
    if not chosen:
        sys.exit("this merchant has no unpaid bills")
    order = _show("create payment", requests.post(f"{api}/payments", json={"bill_ids": chosen}, headers=auth,
                                                  timeout=20))
    paid = _show("wx.requestPayment (fake WeChat pays and notifies the app)",
                 requests.post(f"{fake}/_fake/request_payment", json=order["pay_params"], timeout=20))
    statuses = []
    for bill_id in chosen:
        bill = _show(f"bill {bill_id}", requests.get(f"{api}/bills/{bill_id}", headers=auth, timeout=10))
        statuses.append(bill.get("status"))
    print(f"\nout_trade_no {order['out_trade_no']}, transaction {paid.get('transaction_id')}, "
          f"notification answered {paid.get('status_code')}, bills now: {statuses}")
    return 0 if set(statuses) == {"paid"} else 1


if __name__ == "__main__":
    sys.exit(main())
