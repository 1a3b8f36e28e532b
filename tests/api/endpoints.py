"""Every mini-program API endpoint that needs a token, for the authorization matrix
(tests/api/test_mp_authz_matrix.py). Every new endpoint is added here.

path may contain {bill_id}: it is filled with a paid bill of the target merchant (merchant A1).
auth: "merchant" (a bound merchant is required) or "token" (any logged-in user).
ok: statuses the target merchant's own user may get.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    json: dict | None = None
    auth: str = "merchant"
    ok: tuple[int, ...] = (200,)
    #: Statuses another merchant's user may get (404 for someone else's records).
    other: tuple[int, ...] = (404,)
    marks: tuple = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "me", other=(200,)),
    Endpoint("PATCH", "me", json={"notify_sms": False}, other=(200,)),
    Endpoint("GET", "bills", other=(200,)),
    Endpoint("GET", "bills?status=paid", other=(200,)),
    Endpoint("GET", "bills/{bill_id}"),
    Endpoint("GET", "bills/{bill_id}/receipt"),
    Endpoint("POST", "auth/logout", auth="token", ok=(204,)),
    Endpoint("POST", "auth/bind", json={"phone_code": "bogus-phone-code"}, auth="token", ok=(400,)),
    # WeChat Pay: an unknown bill id is 404 for everyone; the auth scenarios are what this checks.
    Endpoint("POST", "payments", json={"bill_ids": [2147480000]}, ok=(404,)),
    Endpoint("GET", "payments/P000000000000unknown0", ok=(404,)),
    # Tickets: each merchant files and lists its own; an unknown ticket id is 404 for everyone (another
    # merchant's real ticket is checked in tests/api/test_mp_tickets.py).
    Endpoint("GET", "tickets", other=(200,)),
    Endpoint("GET", "tickets?status=open", other=(200,)),
    Endpoint("POST", "tickets", json={"kind": "suggestion", "description": "希望延长夜间营业时间"}, ok=(201,),
             other=(201,)),
    Endpoint("GET", "tickets/2147480000", ok=(404,)),
    Endpoint("POST", "tickets/2147480000/photos", json={}, ok=(404,)),
    Endpoint("POST", "tickets/2147480000/cancel", json={}, ok=(404,)),
    Endpoint("POST", "tickets/2147480000/reopen", json={"note": "还是坏的"}, ok=(404,)),
    Endpoint("POST", "tickets/2147480000/rating", json={"rating": 5}, ok=(404,)),
]
