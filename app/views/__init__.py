"""Every back office view and menu, registered in one place."""
from flask_babel import lazy_gettext as _


def register_views(appbuilder):
    """Add the back office views, menus and REST APIs to the AppBuilder."""
    from app.views.audit import AuditLogView
    from app.views.masterdata import (
        APIS,
        FeeItemView,
        FeeTierView,
        LeaseFeeView,
        LeaseView,
        MarketView,
        MerchantView,
        MeterReplacementView,
        MeterView,
        UnitView,
        ZoneView,
    )
    from app.views.stallmap import StallMapView
    from app.views.tasks import TaskListView

    ops = dict(category="Operations", category_label=_("Operations"), category_icon="fa-tasks")
    appbuilder.add_view(TaskListView, "Daily tasks", label=_("Daily tasks"), icon="fa-check-square-o", **ops)
    appbuilder.add_view(StallMapView, "Stall map", label=_("Stall map"), icon="fa-map", **ops)

    mkt = dict(category="Market", category_label=_("Market"), category_icon="fa-building")
    appbuilder.add_view(MarketView, "Markets", label=_("Markets"), icon="fa-university", **mkt)
    appbuilder.add_view(ZoneView, "Zones", label=_("Zones"), icon="fa-th-large", **mkt)
    appbuilder.add_view(UnitView, "Units", label=_("Units"), icon="fa-th", **mkt)
    appbuilder.add_view(MerchantView, "Merchants", label=_("Merchants"), icon="fa-users", **mkt)
    appbuilder.add_view(LeaseView, "Leases", label=_("Leases"), icon="fa-file-text-o", **mkt)
    appbuilder.add_view(LeaseFeeView, "Lease fees", label=_("Lease fees"), icon="fa-history", **mkt)
    appbuilder.add_view(FeeItemView, "Fee items", label=_("Fee items"), icon="fa-tags", **mkt)
    appbuilder.add_view_no_menu(FeeTierView)
    appbuilder.add_view(MeterView, "Meters", label=_("Meters"), icon="fa-tachometer", **mkt)
    appbuilder.add_view(
        MeterReplacementView, "Meter replacements", label=_("Meter replacements"), icon="fa-exchange", **mkt
    )

    system = dict(category="System", category_label=_("System"), category_icon="fa-cogs")
    appbuilder.add_view(AuditLogView, "Audit log", label=_("Audit log"), icon="fa-history", **system)

    for api in APIS:
        appbuilder.add_api(api)
