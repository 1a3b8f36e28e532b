"""The mini-program access token is shared by every worker through Redis and fetched once."""
from __future__ import annotations

import threading

from app.services import mp_auth


def _new_worker_client(app):
    """A client as a freshly started worker process would build it (nothing cached on the app)."""
    app.extensions.pop("mp_wechat_clients", None)
    return mp_auth.mini_program_client()


def _stored_token(redis, appid):
    return redis.get(f"{mp_auth.TOKEN_KEY_PREFIX}:{appid}_access_token")


def test_workers_share_one_token_through_redis(app, fake_wechat, _redis):
    before = fake_wechat.tokens_issued

    first = _new_worker_client(app)
    assert first.get_phone_number("phone-13511110001") == "13511110001"
    second = _new_worker_client(app)
    assert second is not first
    assert second.get_phone_number("phone-13511110002") == "13511110002"

    assert fake_wechat.tokens_issued == before + 1
    stored = _stored_token(_redis, fake_wechat.creds.appid)
    assert stored is not None
    # Kept for less than WeChat's 7200 s so that it is renewed before WeChat expires it.
    assert 0 < _redis.ttl(f"{mp_auth.TOKEN_KEY_PREFIX}:{fake_wechat.creds.appid}_access_token") <= 7200 - 300


def test_concurrent_workers_fetch_a_single_token(app, fake_wechat, _redis):
    clients = [_new_worker_client(app) for _ in range(6)]
    before = fake_wechat.tokens_issued
    errors, phones = [], []
    start = threading.Barrier(len(clients))

    def work(index, client):
        with app.app_context():
            try:
                start.wait()
                phones.append(client.get_phone_number(f"phone-1352222000{index}"))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(phones) == [f"1352222000{i}" for i in range(6)]
    assert fake_wechat.tokens_issued == before + 1


def test_a_token_rejected_by_wechat_is_replaced_once_for_all_workers(app, fake_wechat, _redis):
    first = _new_worker_client(app)
    first.get_phone_number("phone-13533330001")
    old = _stored_token(_redis, fake_wechat.creds.appid)
    before = fake_wechat.tokens_issued

    fake_wechat.expire_tokens()  # WeChat now answers 42001 for the stored token
    assert first.get_phone_number("phone-13533330002") == "13533330002"
    second = _new_worker_client(app)
    assert second.get_phone_number("phone-13533330003") == "13533330003"

    assert fake_wechat.tokens_issued == before + 1
    assert _stored_token(_redis, fake_wechat.creds.appid) != old
