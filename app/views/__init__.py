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
    from app.views.tickets import TicketView

    appbuilder.add_view(TicketView, "Tickets", label=_("Tickets"), icon="fa-wrench", **ops)

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

    from app.views.imports import MasterImportView, MeterReadingView, ReadingImportView

    billing = dict(category="Billing", category_label=_("Billing"), category_icon="fa-calculator")
    appbuilder.add_view(MeterReadingView, "Meter readings", label=_("Meter readings"), icon="fa-tachometer", **billing)
    appbuilder.add_view(ReadingImportView, "Import readings", label=_("Import readings"), icon="fa-upload", **billing)
    appbuilder.add_link("Enter reading", label=_("Enter a meter reading"), href="ReadingImportView.enter",
                        icon="fa-pencil", **billing)
    appbuilder.add_view(MasterImportView, "Import master data", label=_("Import master data"), icon="fa-upload",
                        **system)

    from app.views.billing import BillingRunView, BillView, ChargeView

    appbuilder.add_view(BillingRunView, "Billing runs", label=_("Billing runs"), icon="fa-play-circle", **billing)
    appbuilder.add_view(BillView, "Bills", label=_("Bills"), icon="fa-file-text", **billing)
    appbuilder.add_view(ChargeView, "One-off charges", label=_("One-off charges"), icon="fa-plus-square", **billing)

    from app.views.wechatpay import PayNotificationListView, PayOrderListView, TradeBillMismatchView, WeChatRefundView

    wxpay = dict(category="WeChat Pay", category_label=_("WeChat Pay"), category_icon="fa-credit-card")
    appbuilder.add_view(PayOrderListView, "Online orders", label=_("Online orders"), icon="fa-shopping-cart", **wxpay)
    appbuilder.add_view(PayNotificationListView, "Pay notifications", label=_("Pay notifications"), icon="fa-bell",
                        **wxpay)
    appbuilder.add_view(TradeBillMismatchView, "Reconciliation", label=_("Reconciliation"), icon="fa-balance-scale",
                        **wxpay)
    appbuilder.add_view(WeChatRefundView, "WeChat refunds", label=_("Refunds"), icon="fa-undo", **wxpay)

    from flask import current_app

    from app.views.alerts import FinanceAlertView, unacknowledged_alert_count

    appbuilder.add_view(FinanceAlertView, "Finance alerts", label=_("Finance alerts"), icon="fa-exclamation-triangle",
                        **wxpay)
    current_app.jinja_env.globals["finance_alert_count"] = unacknowledged_alert_count

    from app.views.bindings import MerchantBindingView, StallQrView

    appbuilder.add_view(MerchantBindingView, "WeChat bindings", label=_("WeChat bindings"), icon="fa-link", **mkt)
    appbuilder.add_view(StallQrView, "Stall QR codes", label=_("Stall QR codes"), icon="fa-qrcode", **mkt)

    from app.views.latefees import LateFeeAccrualView, LateFeeRuleView, LateFeeView, LateFeeWaiverView
    from app.views.payments import OfflinePaymentView, OfflineRefundView, PaymentView, ReceiptView, RefundView

    money = dict(category="Billing", category_label=_("Billing"), category_icon="fa-calculator")
    appbuilder.add_view(PaymentView, "Payments", label=_("Payments"), icon="fa-money", **money)
    appbuilder.add_view(OfflinePaymentView, "Record payment", label=_("Record payment"), icon="fa-plus-circle",
                        **money)
    appbuilder.add_view(LateFeeView, "Late fees", label=_("Late fees"), icon="fa-clock-o", **money)
    appbuilder.add_view(LateFeeRuleView, "Late-fee rules", label=_("Late-fee rules"), icon="fa-gavel", **money)
    appbuilder.add_view_no_menu(LateFeeAccrualView)
    appbuilder.add_view_no_menu(LateFeeWaiverView)
    appbuilder.add_view_no_menu(RefundView)
    appbuilder.add_view_no_menu(OfflineRefundView)
    appbuilder.add_view_no_menu(ReceiptView)

    for api in APIS:
        appbuilder.add_api(api)
