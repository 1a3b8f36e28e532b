"""The stall map: a zone's units drawn at their plan positions, coloured by status."""
from flask import abort, request
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _
from flask_login import current_user

from app.models.enums import UnitStatus
from app.services.exceptions import NotFound
from app.services.stallmap import STATUS_ORDER, build_stall_map, visible_zones
from app.utils.money import format_yuan


class StallMapView(BaseView):
    route_base = "/stall-map"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        """The map of one zone (?zone_id=, default the first zone the user may see)."""
        zones = visible_zones(current_user)
        zone_id = request.args.get("zone_id", type=int)
        if zone_id is None and zones:
            zone_id = zones[0].id
        stall_map = None
        if zone_id is not None:
            try:
                stall_map = build_stall_map(zone_id, current_user)
            except NotFound:
                abort(404)
        return self.render_template(
            "stallmap/index.html",
            title=_("Stall map"),
            zones=zones,
            stall_map=stall_map,
            statuses=STATUS_ORDER,
            UnitStatus=UnitStatus,
            format_yuan=format_yuan,
        )
