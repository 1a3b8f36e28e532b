"""Shared back office view behaviour: zone scoping and spreadsheet export."""
from __future__ import annotations

import io
from decimal import Decimal

from flask import abort, request, send_file
from flask_appbuilder import ModelRestApi, ModelView, expose
from flask_appbuilder.fields import EnumField
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget, Select2Widget
from flask_appbuilder.security.decorators import has_access, protect
from flask_appbuilder.urltools import get_filter_args as fab_get_filter_args
from flask_appbuilder.widgets import ListWidget
from flask_babel import LazyString
from flask_babel import lazy_gettext as _
import sqlalchemy as sa
from wtforms import StringField, validators

from app.extensions import db
from app.models.enums import LabeledEnum
from app.services.scope import ZoneScopeFilter, ZoneScopeViolation
from app.services.exports import export_query_xlsx, is_money_column
from app.utils.dates import format_local, now_utc
from app.utils.money import fen_to_yuan_str, format_yuan, format_yuan_rate, parse_yuan, parse_yuan_rate


def scoped_filters():
    """FAB base_filters that restrict a view or API to the current user's zones."""
    return [["id", ZoneScopeFilter, lambda: None]]


class LabeledEnumField(EnumField):
    """FAB's enum select, offering each member's translated label instead of its raw value.

    An empty or unknown submitted value is a validation error (or None when `allow_blank`),
    not a server error.
    """

    def __init__(self, enum_class, enums, allow_blank=False, **kwargs):
        super().__init__(enum_class, enums, **kwargs)
        members = enum_class.__members__

        def coerce(value):
            if value is None or value == "":
                return None
            if isinstance(value, enum_class):
                return value
            try:
                return members[value]
            except KeyError:
                raise ValueError(value) from None

        self.coerce = coerce
        self.choices = [(name, members[name].label) for name in enums]
        if allow_blank:
            self.choices.insert(0, ("", "—"))

    def pre_validate(self, form):
        # FAB's version raises ValueError, which WTForms does not catch (a 500 instead of a form error).
        if not any(self.data == self.coerce(value) for value, _label in self.choices):
            raise validators.ValidationError(_("Not a valid choice"))


class YuanField(StringField):
    """A money column kept in fen, typed and shown in yuan ("1500", "1,500.50", "¥1,500" -> 150050).

    Integer columns (amounts) take at most two decimals and store int fen through parse_yuan;
    Numeric columns (unit prices, which may carry fractions of a fen) store Decimal fen through
    parse_yuan_rate. Bad text is a form error in Chinese, never a server error or a stored row.
    """

    def __init__(self, label=None, validators=None, is_rate=False, required=True, allow_negative=False, **kwargs):
        kwargs.setdefault("widget", BS3TextFieldWidget())
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(label, validators, **kwargs)
        if required:
            self.flags.required = True  # the form shows the * of a required field
        self.is_rate = is_rate
        self.required = required
        self.allow_negative = allow_negative

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None or self.data == "":
            return ""
        if self.is_rate:
            return format_yuan_rate(Decimal(self.data), symbol=False).replace(",", "")
        return fen_to_yuan_str(int(self.data))

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        text = valuelist[0] or ""
        self.data = None
        if not text.strip():
            if self.required:
                raise ValueError("请填写单价（元）" if self.is_rate else "请填写金额（元）")
            return
        parse = parse_yuan_rate if self.is_rate else parse_yuan
        # ValueError carries a Chinese message ("金额格式不正确：…"): WTForms shows it under the field.
        self.data = parse(text, allow_negative=self.allow_negative)


def yuan_text(value):
    """A fen value for people: int fen -> "¥1,500.50"; a Decimal price in fen -> "¥0.755"; None -> ""."""
    if value is None or value == "":
        return ""
    if isinstance(value, Decimal):
        return format_yuan_rate(value)
    return format_yuan(int(value))


def _enum_label(enum_class):
    def fmt(value):
        if value is None or value == "":
            return ""
        try:
            return enum_class(value).label
        except ValueError:
            return value

    return fmt


def _yes_no(value):
    if value is None:
        return ""
    return _("Yes") if value else _("No")


def _blank_if_none(value):
    """FAB prints a missing value as "None": show nothing instead."""
    return "" if value is None else value


def _joined(values):
    """A to-many relation as "A-001、A-002" rather than a Python list."""
    return "、".join(str(v) for v in values or [])


def _plain_decimal(value):
    """12.5000 -> 12.5; keeps integers without a decimal point."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "" if value is None else value


class OverdueListWidget(ListWidget):
    """FAB's list with overdue rows drawn in red (template args from OverdueRowsMixin)."""

    template = "widgets/overdue_list.html"


class OverdueRowsMixin:
    """A list view whose overdue rows are drawn in red: overdue_condition() is the SQL condition on the
    model that marks a row overdue; row_kind names the rows' CSS class and data attribute."""

    list_widget = OverdueListWidget
    row_kind = "row"
    overdue_legend = ""

    def overdue_condition(self):
        raise NotImplementedError

    def _get_list_widget(self, *args, **kwargs):
        widgets = super()._get_list_widget(*args, **kwargs)
        widget = widgets["list"]
        pks = [pk for pk in (widget.template_args.get("pks") or []) if pk is not None]
        overdue = set()
        if pks:
            model = self.datamodel.obj
            overdue = set(db.session.scalars(sa.select(model.id).where(model.id.in_(pks), self.overdue_condition())))
        widget.template_args.update(overdue_ids=overdue, row_kind=self.row_kind, overdue_legend=self.overdue_legend)
        return widgets


class ScopedModelView(ModelView):
    """A ModelView whose lists, detail pages, forms and export obey zone scope.

    Display: enum columns show their Chinese labels (lists, detail pages, forms, search),
    booleans show 是/否, datetimes show in Asia/Shanghai to the minute, decimals drop trailing
    zeros, to-many relations are joined and missing values are blank (not "None").
    Money: every ``*_fen`` column is shown as yuan (``¥1,500.00``) and typed as yuan in add and
    edit forms (YuanField), stored as fen; the export writes yuan numbers.
    """

    page_size = 50
    list_template = "views/list_with_export.html"
    #: Columns written by the export (defaults to list_columns).
    export_columns: list[str] | None = None

    def __init__(self, *args, **kwargs):
        self.base_filters = scoped_filters() + list(self.base_filters or [])
        self._set_display_formatters()
        super().__init__(*args, **kwargs)

    def _set_display_formatters(self):
        """Formatters and form fields for the display rules above (a view's own formatters win)."""
        datamodel = self.datamodel
        formatters = dict(self.formatters_columns or {})
        forms = {
            "add_form_extra_fields": dict(self.add_form_extra_fields or {}),
            "edit_form_extra_fields": dict(self.edit_form_extra_fields or {}),
            "search_form_extra_fields": dict(self.search_form_extra_fields or {}),
        }
        for name in datamodel.get_columns_list():
            if datamodel.is_relation_many_to_many(name) or datamodel.is_relation_one_to_many(name):
                formatters.setdefault(name, _joined)
                continue
            if datamodel.is_relation(name) or name not in datamodel.list_columns:
                continue
            if is_money_column(name):
                col_type = datamodel.list_columns[name].type
                formatters.setdefault(name, yuan_text)
                required = not datamodel.is_nullable(name)
                label = (self.label_columns or {}).get(name) or name
                for key in ("add_form_extra_fields", "edit_form_extra_fields"):
                    checks = list((self.validators_columns or {}).get(name, []))
                    if not required:
                        checks.insert(0, validators.Optional())
                    forms[key].setdefault(name, YuanField(
                        label, checks, is_rate=isinstance(col_type, sa.Numeric) and not isinstance(col_type, sa.Integer),
                        required=required, default=datamodel.get_col_default(name),
                    ))
            elif datamodel.is_enum(name):
                col_type = datamodel.list_columns[name].type
                enum_class = col_type.enum_class
                if enum_class is None or not issubclass(enum_class, LabeledEnum):
                    continue
                formatters.setdefault(name, _enum_label(enum_class))
                label = (self.label_columns or {}).get(name) or name
                required = not datamodel.is_nullable(name)
                for key, extra in forms.items():
                    checks = list((self.validators_columns or {}).get(name, []))
                    if key != "search_form_extra_fields":
                        checks.append(validators.InputRequired() if required else validators.Optional())
                    extra.setdefault(name, LabeledEnumField(
                        enum_class, list(col_type.enums), allow_blank=not required, label=label,
                        validators=checks, widget=Select2Widget(), default=datamodel.get_col_default(name),
                    ))
            elif datamodel.is_datetime(name):
                formatters.setdefault(name, format_local)
            elif datamodel.is_boolean(name):
                formatters.setdefault(name, _yes_no)
            elif datamodel.is_numeric(name):
                formatters.setdefault(name, _plain_decimal)
        for name in list(self.list_columns or []) + list(self.show_columns or []):
            # Derived amounts (properties such as outstanding_fen) are money too.
            if is_money_column(name) and "." not in name:
                formatters.setdefault(name, yuan_text)
        for name in datamodel.get_columns_list():
            formatters.setdefault(name, _blank_if_none)
        self.formatters_columns = formatters
        for key, extra in forms.items():
            setattr(self, key, extra)

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
        stamp = format_local(now_utc(), "%Y%m%d-%H%M")  # Beijing time, like the rest of the back office
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


FEN_DESCRIPTION = _("In fen (1 yuan = 100 fen)")


def _translated_or_blank(text) -> str:
    """The translation of a label or description; "" for an empty one (gettext("") is the catalog header)."""
    if text is None:
        return ""
    if isinstance(text, LazyString):  # lazy_gettext(""): look at the msgid, not its "translation"
        msgid = text._args[0] if text._args else ""
        return str(text) if msgid else ""
    text = str(text)
    return str(_(text)) if text else ""


class ScopedModelRestApi(ModelRestApi):
    """FAB REST API whose every read and write obeys zone scope (writes: 403 outside it)."""

    def __init__(self, *args, **kwargs):
        self.base_filters = scoped_filters() + list(self.base_filters or [])
        descriptions = dict(self.description_columns or {})
        for name in self.datamodel.get_columns_list():
            if is_money_column(name):
                # The REST API is a machine interface: money stays in fen.
                descriptions.setdefault(name, FEN_DESCRIPTION)
        self.description_columns = descriptions
        super().__init__(*args, **kwargs)

    def _get_field_info(self, field, filter_rel_field, page=None, page_size=None):
        """FAB translates a missing description as gettext(""), which is the catalog header
        ("Project-Id-Version: ..."): give an empty description instead, a given one translated."""
        info = super()._get_field_info(field, filter_rel_field, page=page, page_size=page_size)
        info["description"] = _translated_or_blank((self.description_columns or {}).get(field.name))
        info["label"] = _translated_or_blank((self.label_columns or {}).get(field.name)) or field.name
        return info

    def _description_columns_json(self, cols=None):
        """Descriptions of the given columns, translated; empty ones stay empty (not the catalog header)."""
        cols = cols or []
        return {
            name: _translated_or_blank(text)
            for name, text in (self.description_columns or {}).items()
            if name in cols
        }

    def _scoped_write(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except ZoneScopeViolation as exc:
            self.datamodel.session.rollback()
            return self.response(403, message=str(exc))

    def post_headless(self):
        return self._scoped_write(super().post_headless)

    def put_headless(self, pk):
        return self._scoped_write(super().put_headless, pk)

    def delete_headless(self, pk):
        return self._scoped_write(super().delete_headless, pk)


__all__ = ["ScopedModelView", "ScopedModelRestApi", "scoped_filters", "abort", "request", "protect"]
