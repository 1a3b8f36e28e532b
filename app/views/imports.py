"""Back office pages for imports: meter readings (upload, progress, error file, hand entry),
the onboarding master-data workbook, and the list of stored readings."""
from __future__ import annotations

import io
import os

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.extensions import db
from app.models import Market, Meter
from app.models.readings import ImportBatch, ImportKind, ImportStatus, MeterReading
from app.services.exceptions import DomainError
from app.services.scope import ZoneScopeFilter, scope_query, visible_zone_ids
from app.utils.dates import format_local, period_str, today_local
from app.views.base import ScopedModelView

#: Largest accepted upload (a 200,000-row readings CSV is about 10 MB).
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Restricts the related-row choices of search filters to the user's zones.
SCOPED = [["id", ZoneScopeFilter, lambda: None]]
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class UploadForm(FlaskForm):
    market = SelectField(_("Market"), coerce=int, validators=[DataRequired()])
    file = FileField(_("File"), validators=[FileRequired()])


class ReadingEntryForm(FlaskForm):
    market = SelectField(_("Market"), coerce=int, validators=[DataRequired()])
    meter_number = StringField(_("Meter number"), validators=[DataRequired(), Length(max=40)])
    period = StringField(_("Period (YYYY-MM)"), validators=[DataRequired(), Length(max=20)])
    reading = StringField(_("Reading"), validators=[DataRequired(), Length(max=30)])
    read_date = StringField(_("Reading date (YYYY-MM-DD)"), validators=[Optional(), Length(max=20)])
    reader = StringField(_("Reader"), validators=[Optional(), Length(max=50)])
    note = StringField(_("Note"), validators=[Optional(), Length(max=200)])


def _market_choices():
    markets = db.session.execute(sa.select(Market.id, Market.name).order_by(Market.id)).all()
    return [(m.id, m.name) for m in markets]


def _batch_status(batch: ImportBatch, view_name: str) -> dict:
    """The JSON the progress bar polls: status, counts and, when finished, the error-file links."""
    processed, total = batch.processed_rows or 0, batch.total_rows or 0
    if batch.status in (ImportStatus.pending, ImportStatus.running) and batch.job_id:
        meta = _job_meta(batch.job_id)
        processed = max(processed, int(meta.get("done") or 0))
        total = max(total, int(meta.get("total") or 0))
    finished = batch.status in (ImportStatus.done, ImportStatus.failed)
    if finished:
        percent = 100
    elif total:
        percent = min(99, int(processed * 100 / total))
    else:
        percent = 0
    data = {
        "id": batch.id,
        "status": batch.status.value,
        "status_label": str(batch.status.label),
        "finished": finished,
        "processed": processed,
        "total": total,
        "percent": percent,
        "inserted": batch.inserted_count,
        "updated": batch.updated_count,
        "unchanged": batch.unchanged_count,
        "rejected": batch.rejected_count,
        "flagged": batch.flagged_count,
        "rollover": batch.rollover_count,
        "message": batch.message,
        "error_files": {},
    }
    if finished and batch.rejected_count:
        fmts = ("csv", "xlsx") if batch.kind == ImportKind.readings else ("xlsx",)
        data["error_files"] = {
            fmt: url_for(f"{view_name}.download", batch_id=batch.id, fmt=fmt) for fmt in fmts
        }
    return data


def _job_meta(job_id) -> dict:
    """Progress a worker wrote to job.meta (empty when the job is gone or Redis is unreachable)."""
    from rq.job import Job

    from app.queues import get_redis

    try:
        return Job.fetch(job_id, connection=get_redis()).get_meta(refresh=True) or {}
    except Exception:
        return {}


class _ImportView(BaseView):
    """Upload page, batch page with progress bar, status JSON, error file and template download."""

    kind = ImportKind.readings
    title = ""
    template_formats = ("xlsx", "csv")

    def _batch_or_404(self, batch_id) -> ImportBatch:
        from app.services.readings import can_see_batch

        batch = db.session.get(ImportBatch, batch_id)
        if batch is None or batch.kind != self.kind or not can_see_batch(current_user, batch):
            abort(404)
        return batch

    def render_template(self, template, **kwargs):
        """FAB's render_template with the helpers these templates use."""
        return super().render_template(template, format_local=format_local, plain=_plain, **kwargs)

    def _can(self, permission):
        return self.appbuilder.sm.has_access(permission, self.class_permission_name)

    def _render_list(self, form):
        from app.services.readings import visible_batches

        batches = db.session.scalars(visible_batches(current_user, kind=self.kind).limit(30)).all()
        return self.render_template(
            "imports/index.html", title=self.title, form=form, batches=batches, kind=self.kind.value,
            view_name=self.__class__.__name__, can_upload=self._can("can_upload"),
            can_enter=self._can("can_enter"), template_formats=self.template_formats,
            single_market=len(form.market.choices) == 1, max_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
        )

    def _upload_form(self):
        form = UploadForm()
        form.market.choices = _market_choices()
        if len(form.market.choices) == 1 and not form.market.data:
            form.market.data = form.market.choices[0][0]
        return form

    @expose("/")
    @has_access
    def list(self):
        """The upload form, template downloads and the latest batches."""
        return self._render_list(self._upload_form())

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self):
        """Store the uploaded file as a batch, commit, and queue its import job."""
        from jobs.imports import enqueue_import, import_job_id

        form = self._upload_form()
        if not form.validate_on_submit():
            for errors in form.errors.values():
                for error in errors:
                    flash(str(error), "danger")
            return self._render_list(form), 400
        upload = form.file.data
        filename = os.path.basename(upload.filename or "")
        ext = os.path.splitext(filename)[1].lower()
        if ext not in (".csv", ".xlsx", ".txt"):
            flash(gettext("Please upload a .xlsx or .csv file."), "danger")
            return self._render_list(form), 400
        content = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            flash(gettext("The file is larger than %(mb)s MB.", mb=MAX_UPLOAD_BYTES // (1024 * 1024)), "danger")
            return self._render_list(form), 400
        if not content:
            flash(gettext("The file is empty."), "danger")
            return self._render_list(form), 400
        batch = self._create_batch(form.market.data, filename, content)
        batch.job_id = import_job_id(batch)
        db.session.commit()
        enqueue_import(batch)
        db.session.commit()
        return redirect(url_for(f"{self.__class__.__name__}.show", batch_id=batch.id))

    def _create_batch(self, market_id, filename, content):
        from app.services.readings import create_import_batch, estimate_rows

        zone_ids = visible_zone_ids(current_user)
        return create_import_batch(
            market_id, self.kind, filename, content=content, source="upload", user=current_user,
            zone_ids=zone_ids, total_rows=estimate_rows(content, filename),
        )

    @expose("/batch/<int:batch_id>")
    @has_access
    def show(self, batch_id):
        """A batch: progress bar while it runs, counts and rejected rows when finished."""
        from app.services.readings import batch_errors

        batch = self._batch_or_404(batch_id)
        errors = batch_errors(batch, limit=200) if batch.is_finished else []
        return self.render_template(
            "imports/batch.html", title=self.title, batch=batch, errors=errors, kind=self.kind.value,
            view_name=self.__class__.__name__, status=_batch_status(batch, self.__class__.__name__),
            sheet_titles=_sheet_titles(),
        )

    @expose("/batch/<int:batch_id>/status")
    @has_access
    def status(self, batch_id):
        """Progress and counts of a batch as JSON (polled by the batch page)."""
        batch = self._batch_or_404(batch_id)
        return jsonify(_batch_status(batch, self.__class__.__name__))

    @expose("/batch/<int:batch_id>/errors.<fmt>")
    @has_access
    def download(self, batch_id, fmt):
        """The rejected rows with a reason column, to fix and upload again."""
        batch = self._batch_or_404(batch_id)
        buf = io.BytesIO()
        if self.kind == ImportKind.readings:
            from app.services.readings import write_batch_error_file

            if fmt not in ("csv", "xlsx"):
                abort(404)
            write_batch_error_file(batch, buf, fmt)
        else:
            from app.services.master_import import write_master_error_file

            if fmt != "xlsx":
                abort(404)
            write_master_error_file(batch, buf)
        buf.seek(0)
        stem = os.path.splitext(batch.filename or "import")[0] or "import"
        return send_file(
            buf, as_attachment=True, download_name=f"{stem}-错误行-{batch.id}.{fmt}",
            mimetype=XLSX_MIME if fmt == "xlsx" else "text/csv; charset=utf-8",
        )


def _plain(value) -> str:
    """A quantity without trailing zeros: 12.5000 -> 12.5."""
    from app.services.readings import format_quantity

    return format_quantity(value) if value is not None else ""


def _sheet_titles():
    from app.services.master_import import SHEETS

    return {key: spec.title for key, spec in SHEETS.items()} | {"readings": ""}


class ReadingImportView(_ImportView):
    """Meter readings: upload a CSV/XLSX, follow its progress, fix rejected rows, or enter one by hand."""

    route_base = "/imports/readings"
    default_view = "list"
    kind = ImportKind.readings
    title = _("Import meter readings")

    @expose("/template.<fmt>")
    @has_access
    def template(self, fmt):
        """The readings template (Chinese headers; ?lang=en for English headers)."""
        from app.services.readings import write_readings_template

        if fmt not in ("csv", "xlsx"):
            abort(404)
        english = request.args.get("lang") == "en"
        buf = io.BytesIO()
        write_readings_template(buf, fmt, english=english)
        buf.seek(0)
        name = ("meter-readings-template" if english else "抄表读数导入模板") + f".{fmt}"
        return send_file(buf, as_attachment=True, download_name=name,
                         mimetype=XLSX_MIME if fmt == "xlsx" else "text/csv; charset=utf-8")

    @expose("/enter", methods=["GET", "POST"])
    @has_access
    def enter(self):
        """Type in one reading; it goes through the same checks as an imported row."""
        from app.services.readings import record_meter_reading

        form = ReadingEntryForm()
        form.market.choices = _market_choices()
        if request.method == "GET":
            if len(form.market.choices) == 1:
                form.market.data = form.market.choices[0][0]
            form.meter_number.data = request.args.get("meter", "")
            form.period.data = request.args.get("period") or period_str(today_local().replace(day=1))
            form.read_date.data = today_local().isoformat()
            form.reader.data = current_user.first_name or current_user.username
        outcome = None
        status_code = 200
        if form.validate_on_submit():
            values = {key: getattr(form, key).data or "" for key in
                      ("meter_number", "period", "reading", "read_date", "reader", "note")}
            try:
                outcome = record_meter_reading(form.market.data, values, zone_ids=visible_zone_ids(current_user))
            except DomainError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
                status_code = 422
            else:
                db.session.commit()
                messages = {
                    "created": gettext("Reading saved."),
                    "updated": gettext("Reading corrected (the change is in the audit log)."),
                    "unchanged": gettext("The same reading is already stored; nothing changed."),
                }
                flash(messages[outcome["status"]], "success" if outcome["status"] != "unchanged" else "info")
                if outcome.get("is_flagged"):
                    flash(outcome["flag_reason"], "warning")
        elif request.method == "POST":
            for errors in form.errors.values():
                for error in errors:
                    flash(str(error), "danger")
            status_code = 400
        recent = []
        number = (form.meter_number.data or "").strip()
        if number and form.market.data:
            query = (
                sa.select(MeterReading).join(Meter, Meter.id == MeterReading.meter_id)
                .where(Meter.market_id == form.market.data, Meter.number == number)
                .order_by(MeterReading.period.desc()).limit(12)
            )
            recent = db.session.scalars(scope_query(query, MeterReading)).all()
        return self.render_template(
            "imports/enter.html", title=_("Enter a meter reading"), form=form, outcome=outcome,
            recent=recent, single_market=len(form.market.choices) == 1,
        ), status_code


class MasterImportView(_ImportView):
    """Onboarding: import a market's units, merchants, leases and meters from a workbook (Admin)."""

    route_base = "/imports/master"
    default_view = "list"
    kind = ImportKind.master
    title = _("Import master data")
    template_formats = ("xlsx",)

    def _create_batch(self, market_id, filename, content):
        from app.services.master_import import estimate_master_rows
        from app.services.readings import create_import_batch

        return create_import_batch(
            market_id, self.kind, filename, content=content, source="upload", user=current_user,
            zone_ids=None, total_rows=estimate_master_rows(content, filename),
        )

    @expose("/template.<fmt>")
    @has_access
    def template(self, fmt):
        """The onboarding workbook template: a sheet per kind of data, with example rows."""
        from app.services.master_import import write_master_template

        if fmt != "xlsx":
            abort(404)
        buf = io.BytesIO()
        write_master_template(buf)
        buf.seek(0)
        return send_file(buf, as_attachment=True, download_name="期初数据导入模板.xlsx", mimetype=XLSX_MIME)


class MeterReadingView(ScopedModelView):
    """Stored readings, zone-scoped and read-only: corrections go through import or hand entry."""

    datamodel = SQLAInterface(MeterReading)
    list_title = _("Meter readings")
    show_title = _("Meter reading")
    base_permissions = ["can_list", "can_show", "can_export"]
    label_columns = {
        "meter": _("Meter"),
        "zone": _("Zone"),
        "period": _("Period"),
        "reading": _("Reading"),
        "previous_reading": _("Previous reading"),
        "consumption": _("Consumption"),
        "read_date": _("Reading date"),
        "reader": _("Reader"),
        "note": _("Note"),
        "is_rollover": _("Roll-over"),
        "has_replacement": _("Meter replaced"),
        "is_flagged": _("Needs review"),
        "flag_reason": _("Review reason"),
        "bill_id": _("Bill"),
        "billed_dt": _("Billed"),
        "batch_id": _("Import batch"),
        "created_dt": _("Created"),
        "updated_dt": _("Updated"),
    }
    list_columns = ["meter", "zone", "period", "previous_reading", "reading", "consumption", "read_date",
                    "reader", "is_rollover", "is_flagged", "bill_id"]
    show_columns = ["meter", "zone", "period", "previous_reading", "reading", "consumption", "read_date",
                    "reader", "note", "is_rollover", "has_replacement", "is_flagged", "flag_reason",
                    "bill_id", "billed_dt", "batch_id", "created_dt", "updated_dt"]
    search_columns = ["meter", "zone", "period", "is_flagged", "is_rollover", "reader"]
    order_columns = ["period", "reading", "consumption", "read_date"]
    base_order = ("period", "desc")
    formatters_columns = {"period": lambda value: period_str(value) if value else ""}
    search_form_query_rel_fields = {"meter": SCOPED, "zone": SCOPED}
