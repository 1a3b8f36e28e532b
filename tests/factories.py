"""Test data builders (factory_boy) on the app's session."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import factory
from factory.alchemy import SQLAlchemyModelFactory

from app.extensions import db
from app.models import FeeItem, FeeTier, Lease, LeaseFee, Market, Merchant, Meter, Unit, Zone
from app.models.enums import BillingCycle, FeeKind, LeaseStatus, MeterType, PricingMode, UnitStatus


class _Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class MarketFactory(_Base):
    class Meta:
        model = Market

    code = factory.Sequence(lambda n: f"MK{n}")
    name = factory.Sequence(lambda n: f"测试市场{n}")
    due_days = 15


class ZoneFactory(_Base):
    class Meta:
        model = Zone

    market = factory.SubFactory(MarketFactory)
    code = factory.Sequence(lambda n: f"Z{n}")
    name = factory.LazyAttribute(lambda o: f"{o.code}区")


class UnitFactory(_Base):
    class Meta:
        model = Unit

    zone = factory.SubFactory(ZoneFactory)
    market = factory.LazyAttribute(lambda o: o.zone.market)
    code = factory.Sequence(lambda n: f"U-{n:03d}")
    floor = "1"
    area_m2 = Decimal("12.00")
    category = "蔬菜"
    status = UnitStatus.leased
    plan_x = factory.Sequence(lambda n: Decimal(2 + (n % 10) * 11))
    plan_y = factory.Sequence(lambda n: Decimal(2 + (n // 10) * 5))
    plan_w = Decimal(10)
    plan_h = Decimal(3)


class MerchantFactory(_Base):
    class Meta:
        model = Merchant

    market = factory.LazyAttribute(lambda o: o.zone.market)
    zone = factory.SubFactory(ZoneFactory)
    code = factory.Sequence(lambda n: f"M{n:05d}")
    name = factory.Sequence(lambda n: f"张记蔬菜{n}号")
    contact_name = "张伟"
    phone = factory.Sequence(lambda n: f"1380000{n:04d}")


class LeaseFactory(_Base):
    class Meta:
        model = Lease

    merchant = factory.SubFactory(MerchantFactory)
    market = factory.LazyAttribute(lambda o: o.merchant.market)
    zone = factory.LazyAttribute(lambda o: o.merchant.zone)
    code = factory.Sequence(lambda n: f"L{n:05d}")
    start_date = date(2026, 1, 1)
    end_date = date(2027, 12, 31)
    deposit_fen = 200000
    billing_cycle = BillingCycle.monthly
    status = LeaseStatus.active


class MeterFactory(_Base):
    class Meta:
        model = Meter

    unit = factory.SubFactory(UnitFactory)
    market = factory.LazyAttribute(lambda o: o.unit.market)
    zone = factory.LazyAttribute(lambda o: o.unit.zone)
    number = factory.Sequence(lambda n: f"E{n:06d}")
    meter_type = MeterType.electricity
    unit_label = "kWh"
    multiplier = Decimal(1)
    max_reading = Decimal(99999)
    install_date = date(2025, 1, 1)
    start_reading = Decimal(0)


@dataclass
class SmallMarket:
    market: Market
    zone_a: Zone
    zone_b: Zone
    units_a: list
    units_b: list
    merchants_a: list
    merchants_b: list
    leases: list
    fee_items: dict
    meters: list


def build_small_market() -> SmallMarket:
    """Zones A and B, two leased units each, one merchant per unit, standard fee items, meters."""
    market = MarketFactory(code="JJ", name="金江中心市场")
    zone_a = ZoneFactory(market=market, code="A", name="A区·蔬菜")
    zone_b = ZoneFactory(market=market, code="B", name="B区·水产")
    fee_items = {
        "rent": FeeItem(market=market, code="RENT", name="摊位租金", kind=FeeKind.rent,
                        pricing_mode=PricingMode.per_area, default_rate_fen=Decimal("6000")),
        "mgmt": FeeItem(market=market, code="MGMT", name="管理费", kind=FeeKind.management,
                        pricing_mode=PricingMode.fixed, default_rate_fen=Decimal("5000")),
        "power": FeeItem(market=market, code="POWER", name="电费", kind=FeeKind.electricity,
                         pricing_mode=PricingMode.metered, meter_type=MeterType.electricity,
                         default_rate_fen=Decimal("68"), unit_label="kWh"),
    }
    db.session.add_all(fee_items.values())
    db.session.flush()
    for low, high, rate in ((0, 200, "68"), (200, None, "98")):
        db.session.add(FeeTier(market=market, fee_item=fee_items["power"], from_qty=Decimal(low),
                               to_qty=None if high is None else Decimal(high), rate_fen=Decimal(rate)))
    units_a = [UnitFactory(zone=zone_a, market=market, code=f"A-{i:03d}") for i in (1, 2)]
    units_b = [UnitFactory(zone=zone_b, market=market, code=f"B-{i:03d}", category="水产") for i in (1, 2)]
    merchants_a = [MerchantFactory(zone=zone_a, market=market, name=n) for n in ("张记蔬菜", "李氏鲜蔬")]
    merchants_b = [MerchantFactory(zone=zone_b, market=market, name=n) for n in ("王记水产", "陈家海鲜")]
    leases, meters = [], []
    for unit, merchant in zip(units_a + units_b, merchants_a + merchants_b):
        lease = LeaseFactory(merchant=merchant, market=market, zone=unit.zone)
        lease.units.append(unit)
        for item in fee_items.values():
            db.session.add(LeaseFee(market=market, lease=lease, fee_item=item, effective_from=lease.start_date))
        leases.append(lease)
        meters.append(MeterFactory(unit=unit, market=market, zone=unit.zone, number=f"E{unit.code.replace('-', '')}"))
    db.session.flush()
    return SmallMarket(market, zone_a, zone_b, units_a, units_b, merchants_a, merchants_b, leases, fee_items, meters)


# --- Bills (generic builders; shared by the billing, late-fee and payment tests) -------------

from app.models import Bill, BillLine  # noqa: E402
from app.models.enums import BillKind, BillStatus  # noqa: E402


class BillFactory(_Base):
    """An issued bill; pass lease= (merchant, zone, market follow) or merchant= and zone=.

    amount_fen is set from the lines by make_bill(); on its own the factory leaves it as given.
    """

    class Meta:
        model = Bill

    lease = None
    merchant = factory.LazyAttribute(lambda o: o.lease.merchant if o.lease is not None else MerchantFactory())
    market = factory.LazyAttribute(lambda o: o.merchant.market)
    zone_id = factory.LazyAttribute(lambda o: o.lease.zone_id if o.lease is not None else o.merchant.zone_id)
    number = factory.Sequence(lambda n: f"B{n:07d}")
    kind = BillKind.regular
    status = BillStatus.issued
    period = date(2026, 10, 1)
    issue_date = date(2026, 11, 1)
    due_date = date(2026, 11, 15)
    amount_fen = 0
    paid_fen = 0
    late_fee_fen = 0


class BillLineFactory(_Base):
    class Meta:
        model = BillLine

    bill = factory.SubFactory(BillFactory)
    market = factory.LazyAttribute(lambda o: o.bill.market)
    description = "摊位租金"
    quantity = Decimal(1)
    amount_fen = 10000


def make_bill(lease=None, lines=None, amount_fen=None, **kwargs):
    """An issued bill with lines; `lines` is a list of (description, amount_fen) or dicts of BillLine fields.

    Without lines, one line of amount_fen (default 100,000 fen). The bill's amount is the sum of its lines.
    """
    if lines is None:
        lines = [("摊位租金", 100000 if amount_fen is None else amount_fen)]
    specs = [dict(description=spec[0], amount_fen=spec[1]) if isinstance(spec, tuple) else dict(spec) for spec in lines]
    bill = BillFactory(lease=lease, amount_fen=sum(s["amount_fen"] for s in specs), **kwargs)
    unit = lease.units[0] if lease is not None and lease.units else None
    for spec in specs:
        spec.setdefault("unit_id", unit.id if unit is not None else None)
        BillLineFactory(bill=bill, market=bill.market, **spec)
    db.session.flush()
    return bill


# --- Meter readings for billing tests -------------------------------------------------------------


def add_reading(meter, period, consumption, previous=Decimal(1000), is_rollover=False, reading=None):
    """A stored reading of `meter` for `period` (consumption already x multiplier)."""
    from app.models.readings import MeterReading

    consumption = Decimal(consumption)
    row = MeterReading(
        market_id=meter.market_id, meter_id=meter.id, zone_id=meter.zone_id, period=period,
        previous_reading=Decimal(previous), consumption=consumption, is_rollover=is_rollover,
        reading=Decimal(reading) if reading is not None else Decimal(previous) + consumption,
    )
    db.session.add(row)
    db.session.flush()
    return row
