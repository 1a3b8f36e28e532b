"""Back office: mini-program bindings (who may act for which merchant) and printable stall QR codes."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext, lazy_gettext as _
from flask_login import current_user
from markupsafe import Markup, escape

from app.extensions import db
from app.models.leases import Lease, lease_units
from app.models.markets import Zone
from app.models.merchants import Merchant
from app.models.units import Unit
from app.models.wechat_users import MerchantBinding
from app.services import bind_tokens, mp_auth
from app.services.scope import ZoneScopeFilter, can_see_zone, scope_query
from app.utils.dates import format_local, now_utc
from app.views.base import ScopedModelView


def _check_csrf() -> None:
    """Refuse a POST without a valid CSRF token (when CSRF is enabled)."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    from flask_wtf.csrf import CSRFError, validate_csrf

    try:
        validate_csrf(request.form.get("csrf_token"))
    except (CSRFError, Exception):
        abort(400)


def _revoke_button(binding_id):
    if binding_id is None:
        return ""
    from flask_wtf.csrf import generate_csrf

    return Markup(
        '<form method="post" action="{url}" style="display:inline" onsubmit="return confirm(\'{confirm}\')">'
        '<input type="hidden" name="csrf_token" value="{token}">'
        '<button type="submit" class="btn btn-xs btn-danger">{label}</button></form>'
    ).format(url=url_for("MerchantBindingView.revoke", pk=binding_id), token=generate_csrf(),
             label=gettext("Revoke"), confirm=escape(gettext("Revoke this binding?")))


def _masked_openid(user):
    openid = getattr(user, "openid", "") or ""
    return openid if len(openid) <= 10 else f"{openid[:6]}…{openid[-4:]}"


class MerchantBindingView(ScopedModelView):
    """WeChat users bound to merchants; managers see and revoke those of their zones."""

    datamodel = SQLAInterface(MerchantBinding)
    route_base = "/bindings"
    base_permissions = ["can_list", "can_show", "can_export", "can_revoke"]
    list_title = _("WeChat bindings")
    show_title = _("WeChat binding")
    list_columns = ["merchant", "wechat_user", "role", "bound_via", "unit", "created_dt", "revoked_dt", "revoke_target"]
    show_columns = ["merchant", "wechat_user", "role", "bound_via", "unit", "created_dt", "revoked_dt", "revoked_by"]
    search_columns = ["merchant", "role", "bound_via", "revoked_dt"]
    search_form_query_rel_fields = {"merchant": [["id", ZoneScopeFilter, lambda: None]]}
    order_columns = ["role", "bound_via", "created_dt", "revoked_dt"]
    export_columns = ["merchant", "wechat_user", "role", "bound_via", "unit", "created_dt", "revoked_dt"]
    base_order = ("id", "desc")
    label_columns = {
        "merchant": _("Merchant"),
        "wechat_user": _("WeChat user"),
        "role": _("Role"),
        "bound_via": _("Bound via"),
        "unit": _("Unit"),
        "created_dt": _("Bound at"),
        "revoked_dt": _("Revoked at"),
        "revoked_by": _("Revoked by"),
        "revoke_target": _("Actions"),
    }
    formatters_columns = {
        "wechat_user": _masked_openid,
        "created_dt": format_local,
        "revoked_dt": format_local,
        "revoke_target": _revoke_button,
    }

    @expose("/revoke/<int:pk>", methods=["POST"])
    @has_access
    def revoke(self, pk):
        """Revoke one binding (in the user's zones); takes effect on the user's next request."""
        _check_csrf()
        binding = db.session.execute(
            scope_query(sa.select(MerchantBinding).where(MerchantBinding.id == pk), MerchantBinding)
        ).scalar_one_or_none()
        if binding is None:
            abort(404)
        mp_auth.revoke_binding(binding, revoked_by=current_user)
        db.session.commit()
        flash(gettext("Binding revoked: %(merchant)s", merchant=binding.merchant.name), "success")
        return redirect(request.referrer or url_for("MerchantBindingView.list"))


def _current_tenant(unit_ids):
    """{unit_id: merchant name} of the units' current leases."""
    if not unit_ids:
        return {}
    rows = db.session.execute(
        sa.select(lease_units.c.unit_id, Merchant.name)
        .join(Lease, Lease.id == lease_units.c.lease_id)
        .join(Merchant, Merchant.id == Lease.merchant_id)
        .where(lease_units.c.unit_id.in_(unit_ids), Lease.status.in_(mp_auth.CURRENT_LEASE_STATUSES))
    ).all()
    return {unit_id: name for unit_id, name in rows}


def _qr_cards(units):
    """Template data of one printable QR card per unit."""
    from app.utils.pdf import qr_data_uri

    tenants = _current_tenant([u.id for u in units])
    expires = format_local(now_utc() + timedelta(seconds=bind_tokens.ttl_seconds()), "%Y-%m-%d")
    cards = []
    for unit in units:
        url = bind_tokens.bind_url(bind_tokens.make_bind_token(unit))
        cards.append({"unit": unit, "zone": unit.zone, "tenant": tenants.get(unit.id), "url": url,
                      "qr": qr_data_uri(url, scale=6), "expires": expires})
    return cards


class StallQrView(BaseView):
    """Printable stall QR codes: scanning one in the mini-program binds a shop assistant."""

    route_base = "/stall-qr"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        """Zones and their units, with links to each unit's QR page and the zone sheet."""
        zones = db.session.execute(scope_query(sa.select(Zone).order_by(Zone.code), Zone)).scalars().all()
        zone_id = request.args.get("zone_id", type=int)
        zone = next((z for z in zones if z.id == zone_id), zones[0] if zones else None)
        units = []
        if zone is not None:
            units = db.session.execute(sa.select(Unit).where(Unit.zone_id == zone.id).order_by(Unit.code)).scalars().all()
        return self.render_template("bindings/qr_index.html", title=gettext("Stall QR codes"), zones=zones,
                                    zone=zone, units=units, tenants=_current_tenant([u.id for u in units]))

    @expose("/unit/<int:unit_id>")
    @has_access
    def unit(self, unit_id):
        """The printable QR code of one unit."""
        unit = db.session.get(Unit, unit_id)
        if unit is None or not can_see_zone(unit.zone_id):
            abort(404)
        return self.render_template("bindings/qr_sheet.html", title=gettext("Stall QR code %(code)s", code=unit.code),
                                    cards=_qr_cards([unit]), single=True)

    @expose("/zone/<int:zone_id>")
    @has_access
    def zone(self, zone_id):
        """A printable sheet of the QR codes of every unit of a zone."""
        zone = db.session.get(Zone, zone_id)
        if zone is None or not can_see_zone(zone.id):
            abort(404)
        units = db.session.execute(sa.select(Unit).where(Unit.zone_id == zone.id).order_by(Unit.code)).scalars().all()
        return self.render_template("bindings/qr_sheet.html", title=gettext("Stall QR codes of %(zone)s", zone=zone.name),
                                    cards=_qr_cards(units), single=False)
