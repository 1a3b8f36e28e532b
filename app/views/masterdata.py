"""Back office views and REST APIs for the market's master data."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _

from app.models import FeeItem, FeeTier, Lease, LeaseFee, Market, Merchant, Meter, MeterReplacement, Unit, Zone
from app.services.scope import ZoneScopeFilter
from app.views.base import ScopedModelRestApi, ScopedModelView

SCOPED_ZONE_QUERY = [["id", ZoneScopeFilter, lambda: None]]

LABELS = {
    "market": _("Market"),
    "market_id": _("Market"),
    "code": _("Code"),
    "name": _("Name"),
    "kind": _("Kind"),
    "address": _("Address"),
    "due_days": _("Days until due"),
    "zone": _("Zone"),
    "zone_id": _("Zone"),
    "managers": _("Managers"),
    "plan_width": _("Plan width (m)"),
    "plan_height": _("Plan height (m)"),
    "floor": _("Floor"),
    "area_m2": _("Area (m²)"),
    "category": _("Category"),
    "status": _("Status"),
    "plan_x": _("Plan X"),
    "plan_y": _("Plan Y"),
    "plan_w": _("Plan width"),
    "plan_h": _("Plan height"),
    "plan_polygon": _("Plan polygon"),
    "note": _("Note"),
    "contact_name": _("Contact person"),
    "phone": _("Phone"),
    "phone2": _("Second phone"),
    "business_licence_no": _("Business licence no."),
    "credit_code": _("Unified social credit code"),
    "id_card_no": _("ID card no."),
    "notify_wechat": _("WeChat notifications"),
    "notify_sms": _("SMS notifications"),
    "notify_bill": _("Notify new bills"),
    "notify_overdue": _("Notify overdue bills"),
    "notify_ticket": _("Notify ticket progress"),
    "merchant": _("Merchant"),
    "units": _("Units"),
    "start_date": _("Start date"),
    "end_date": _("End date"),
    "deposit_fen": _("Deposit (yuan)"),
    "billing_cycle": _("Billing cycle"),
    "fees": _("Fees"),
    "lease": _("Lease"),
    "fee_item": _("Fee item"),
    "effective_from": _("Effective from"),
    "rate_fen": _("Price (yuan)"),
    "pricing_mode": _("Pricing mode"),
    "meter_type": _("Meter type"),
    "default_rate_fen": _("Default price (yuan)"),
    "unit_label": _("Unit of measure"),
    "is_active": _("In use"),
    "sort_order": _("Sort order"),
    "tiers": _("Price tiers"),
    "from_qty": _("From quantity"),
    "to_qty": _("To quantity"),
    "number": _("Meter number"),
    "unit": _("Unit"),
    "multiplier": _("Multiplier"),
    "max_reading": _("Maximum reading"),
    "install_date": _("Install date"),
    "start_reading": _("Start reading"),
    "is_public": _("Public meter"),
    "meter": _("Meter"),
    "replaced_date": _("Replaced on"),
    "old_final_reading": _("Old meter final reading"),
    "new_start_reading": _("New meter start reading"),
    "created_dt": _("Created"),
    "updated_dt": _("Updated"),
}

#: The REST API is in fen: its money labels carry no unit (the description says "in fen").
API_LABELS = {
    **LABELS,
    "deposit_fen": _("Deposit"),
    "rate_fen": _("Price"),
    "default_rate_fen": _("Default price"),
}


class MarketView(ScopedModelView):
    datamodel = SQLAInterface(Market)
    list_title = _("Markets")
    show_title = _("Market")
    add_title = _("Add market")
    edit_title = _("Edit market")
    label_columns = LABELS
    list_columns = ["code", "name", "kind", "address", "due_days"]
    add_columns = edit_columns = ["code", "name", "kind", "address", "due_days"]
    search_columns = ["code", "name", "kind"]


class ZoneView(ScopedModelView):
    datamodel = SQLAInterface(Zone)
    list_title = _("Zones")
    show_title = _("Zone")
    add_title = _("Add zone")
    edit_title = _("Edit zone")
    label_columns = LABELS
    list_columns = ["market", "code", "name", "managers"]
    add_columns = edit_columns = ["market", "code", "name", "managers", "plan_width", "plan_height"]
    show_columns = ["market", "code", "name", "managers", "plan_width", "plan_height"]
    search_columns = ["market", "code", "name"]
    order_columns = ["code", "name"]


class UnitView(ScopedModelView):
    datamodel = SQLAInterface(Unit)
    list_title = _("Units")
    show_title = _("Unit")
    add_title = _("Add unit")
    edit_title = _("Edit unit")
    label_columns = LABELS
    list_columns = ["code", "zone", "floor", "area_m2", "category", "status"]
    show_columns = [
        "market", "zone", "code", "floor", "area_m2", "category", "status",
        "plan_x", "plan_y", "plan_w", "plan_h", "plan_polygon", "note", "created_dt", "updated_dt",
    ]
    add_columns = edit_columns = [
        "market", "zone", "code", "floor", "area_m2", "category", "status",
        "plan_x", "plan_y", "plan_w", "plan_h", "plan_polygon", "note",
    ]
    search_columns = ["code", "zone", "floor", "category", "status", "area_m2"]
    order_columns = ["code", "floor", "area_m2", "category", "status"]
    base_order = ("code", "asc")
    add_form_query_rel_fields = edit_form_query_rel_fields = {"zone": SCOPED_ZONE_QUERY}


class MerchantView(ScopedModelView):
    datamodel = SQLAInterface(Merchant)
    list_title = _("Merchants")
    show_title = _("Merchant")
    add_title = _("Add merchant")
    edit_title = _("Edit merchant")
    label_columns = LABELS
    list_columns = ["code", "name", "zone", "contact_name", "phone", "credit_code"]
    show_columns = [
        "market", "code", "name", "zone", "contact_name", "phone", "phone2", "business_licence_no",
        "credit_code", "id_card_no", "notify_wechat", "notify_sms", "notify_bill", "notify_overdue",
        "notify_ticket", "note", "created_dt", "updated_dt",
    ]
    add_columns = edit_columns = [c for c in show_columns if c not in ("created_dt", "updated_dt")]
    search_columns = ["code", "name", "zone", "contact_name", "phone", "credit_code"]
    order_columns = ["code", "name", "contact_name"]
    base_order = ("code", "asc")
    add_form_query_rel_fields = edit_form_query_rel_fields = {"zone": SCOPED_ZONE_QUERY}


class LeaseFeeView(ScopedModelView):
    datamodel = SQLAInterface(LeaseFee)
    list_title = _("Lease fees")
    show_title = _("Lease fee")
    add_title = _("Add lease fee")
    edit_title = _("Edit lease fee")
    label_columns = LABELS
    list_columns = ["lease", "fee_item", "effective_from", "rate_fen", "note"]
    add_columns = ["market", "lease", "fee_item", "effective_from", "rate_fen", "note"]
    edit_columns = ["note"]  # a price change is a new row, never an overwrite
    search_columns = ["lease", "fee_item", "effective_from"]
    base_order = ("effective_from", "desc")
    add_form_query_rel_fields = {"lease": SCOPED_ZONE_QUERY}


class LeaseView(ScopedModelView):
    datamodel = SQLAInterface(Lease)
    list_title = _("Leases")
    show_title = _("Lease")
    add_title = _("Add lease")
    edit_title = _("Edit lease")
    label_columns = LABELS
    list_columns = ["code", "merchant", "zone", "units", "start_date", "end_date", "billing_cycle", "status"]
    show_columns = [
        "market", "code", "merchant", "zone", "units", "start_date", "end_date", "deposit_fen",
        "billing_cycle", "status", "note", "created_dt", "updated_dt",
    ]
    add_columns = edit_columns = [
        "market", "code", "merchant", "zone", "units", "start_date", "end_date", "deposit_fen",
        "billing_cycle", "status", "note",
    ]
    search_columns = ["code", "merchant", "zone", "status", "billing_cycle", "start_date", "end_date"]
    order_columns = ["code", "start_date", "end_date", "status"]
    base_order = ("code", "asc")
    related_views = [LeaseFeeView]
    add_form_query_rel_fields = edit_form_query_rel_fields = {
        "zone": SCOPED_ZONE_QUERY,
        "merchant": SCOPED_ZONE_QUERY,
        "units": SCOPED_ZONE_QUERY,
    }


class FeeTierView(ScopedModelView):
    datamodel = SQLAInterface(FeeTier)
    list_title = _("Fee tiers")
    label_columns = LABELS
    list_columns = ["fee_item", "from_qty", "to_qty", "rate_fen"]
    add_columns = edit_columns = ["market", "fee_item", "from_qty", "to_qty", "rate_fen"]


class FeeItemView(ScopedModelView):
    datamodel = SQLAInterface(FeeItem)
    list_title = _("Fee items")
    show_title = _("Fee item")
    add_title = _("Add fee item")
    edit_title = _("Edit fee item")
    label_columns = LABELS
    list_columns = ["code", "name", "kind", "pricing_mode", "meter_type", "default_rate_fen", "unit_label", "is_active"]
    add_columns = edit_columns = [
        "market", "code", "name", "kind", "pricing_mode", "meter_type", "default_rate_fen",
        "unit_label", "is_active", "sort_order",
    ]
    search_columns = ["code", "name", "kind", "pricing_mode"]
    related_views = [FeeTierView]


class MeterReplacementView(ScopedModelView):
    datamodel = SQLAInterface(MeterReplacement)
    list_title = _("Meter replacements")
    label_columns = LABELS
    list_columns = ["meter", "replaced_date", "old_final_reading", "new_start_reading", "note"]
    add_columns = edit_columns = ["market", "meter", "replaced_date", "old_final_reading", "new_start_reading", "note"]
    add_form_query_rel_fields = edit_form_query_rel_fields = {"meter": SCOPED_ZONE_QUERY}


class MeterView(ScopedModelView):
    datamodel = SQLAInterface(Meter)
    list_title = _("Meters")
    show_title = _("Meter")
    add_title = _("Add meter")
    edit_title = _("Edit meter")
    label_columns = LABELS
    list_columns = ["number", "meter_type", "unit", "zone", "multiplier", "max_reading", "install_date", "is_active"]
    show_columns = [
        "market", "number", "meter_type", "unit", "zone", "unit_label", "multiplier", "max_reading",
        "install_date", "start_reading", "is_public", "is_active", "created_dt", "updated_dt",
    ]
    add_columns = edit_columns = [c for c in show_columns if c not in ("created_dt", "updated_dt")]
    search_columns = ["number", "meter_type", "unit", "zone", "is_active"]
    order_columns = ["number", "install_date"]
    base_order = ("number", "asc")
    related_views = [MeterReplacementView]
    add_form_query_rel_fields = edit_form_query_rel_fields = {
        "zone": SCOPED_ZONE_QUERY,
        "unit": SCOPED_ZONE_QUERY,
    }


def _api(model, name, columns):
    """A zone-scoped FAB REST API class for a model."""
    return type(
        name,
        (ScopedModelRestApi,),
        {
            "datamodel": SQLAInterface(model),
            "resource_name": model.__tablename__,
            "label_columns": API_LABELS,
            "list_columns": columns,
            "show_columns": columns,
            "allow_browser_login": True,
            "page_size": 50,
        },
    )


ZoneApi = _api(Zone, "ZoneApi", ["id", "code", "name", "market.code"])
UnitApi = _api(Unit, "UnitApi", ["id", "code", "zone.code", "floor", "area_m2", "category", "status"])
MerchantApi = _api(Merchant, "MerchantApi", ["id", "code", "name", "zone.code", "contact_name", "phone"])
LeaseApi = _api(
    Lease, "LeaseApi", ["id", "code", "merchant.name", "zone.code", "start_date", "end_date", "billing_cycle", "status"]
)
MeterApi = _api(Meter, "MeterApi", ["id", "number", "meter_type", "unit.code", "zone.code", "multiplier", "max_reading"])

APIS = [ZoneApi, UnitApi, MerchantApi, LeaseApi, MeterApi]
