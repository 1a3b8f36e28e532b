"""GET/PATCH /me: the current merchant's profile, units, contacts and notification settings."""
from __future__ import annotations

from flask import g

from app.api.mp import api_doc, json_body, merchant_required, mp_api
from app.api.schemas.auth import binding_dump
from app.api.schemas.me import MePatchSchema, MeSchema
from app.extensions import db
from app.services import mp_auth, notifications


def _me() -> dict:
    merchant = g.merchant
    return MeSchema().dump({
        "merchant": merchant,
        "role": g.mp_binding.role.value,
        "units": mp_auth.merchant_units(merchant),
        "merchants": [binding_dump(b) for b in mp_auth.active_bindings(g.mp_user)],
        "subscribe_templates": notifications.subscribe_templates(),
    })


@mp_api.get("/me")
@api_doc("The current merchant's profile", tags=["me"], response=MeSchema)
@merchant_required
def get_me():
    return _me()


@mp_api.patch("/me")
@api_doc("Change contact details and notification settings (owner only)", tags=["me"], body=MePatchSchema,
         response=MeSchema,
         description="Only contact_name, phone2 and the notify_* flags; the name, registered phone and "
                     "credit code are kept by the market office (unknown fields answer 422).")
@merchant_required
def patch_me():
    changes = json_body(MePatchSchema())
    mp_auth.update_merchant_profile(g.mp_binding, changes)
    db.session.commit()
    return _me()
