"""The stall map: a zone's units drawn at their plan positions, coloured by status."""
from flask import render_template_string
from flask_appbuilder import BaseView, expose, has_access


class StallMapView(BaseView):
    route_base = "/stall-map"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        return self.render_template("stallmap/index.html")
