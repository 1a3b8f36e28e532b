"""Shared back office view behaviour: zone scoping and spreadsheet export."""
from __future__ import annotations

import io
from datetime import datetime

from flask import abort, request, send_file
from flask_appbuilder import ModelRestApi, ModelView, expose
from flask_appbuilder.security.decorators import has_access, protect
from flask_appbuilder.urltools import get_filter_args as fab_get_filter_args

from app.services.scope import ZoneScopeFilter
from app.services.exports import export_query_xlsx


def scoped_filters():
    """FAB base_filters that restrict a view or API to the current user's zones."""
    return [["id", ZoneScopeFilter, lambda: None]]


class ScopedModelView(ModelView):
    """A ModelView whose lists, detail pages, forms and export obey zone scope."""

    page_size = 50
    list_template = "views/list_with_export.html"
    #: Columns written by the export (defaults to list_columns).
    export_columns: list[str] | None = None

    def __init__(self, *args, **kwargs):
        self.base_filters = scoped_filters() + list(self.base_filters or [])
        super().__init__(*args, **kwargs)

    @expose("/export/")
    @has_access
    def export(self):
        """Download the current (filtered, scoped) list as XLSX."""
        get_filter_args(self._filters)
        joined = self._filters.get_joined_filters(self._base_filters)
        columns = self.export_columns or self.list_columns
        labels = [str(self.label_columns.get(c, c)) for c in columns]
        _, items = self.datamodel.query(joined, page=None, page_size=None)
        buf = io.BytesIO()
        export_query_xlsx(buf, str(self.list_title), columns, labels, items)
        buf.seek(0)
        stamp = datetime.now().strftime("%Y%m%d-%H%M")
        name = f"{self.__class__.__name__.removesuffix('View').lower()}-{stamp}.xlsx"
        return send_file(
            buf,
            as_attachment=True,
            download_name=name,
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )


def get_filter_args(filters):
    """Apply the list page's filter query arguments (_flt_*) to a Filters object."""
    fab_get_filter_args(filters)


class ScopedModelRestApi(ModelRestApi):
    """FAB REST API whose every read and write obeys zone scope."""

    def __init__(self, *args, **kwargs):
        self.base_filters = scoped_filters() + list(self.base_filters or [])
        super().__init__(*args, **kwargs)


__all__ = ["ScopedModelView", "ScopedModelRestApi", "scoped_filters", "abort", "request", "protect"]
