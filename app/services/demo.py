"""A believable demo market (金江中心市场): zones, stalls on a plan, merchants, leases, meters, staff,
and a few months of history (readings, posted bills, offline payments, late fees) made by the real services."""
from __future__ import annotations

import csv
import io
import os
import random
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app
from flask_appbuilder.security.sqla.models import User

from app.extensions import db
from app.models import (
    Bill, BillingRun, FeeItem, FeeTier, LateFeeRule, Lease, LeaseFee, Market, Merchant, Meter, Unit, Zone, lease_units,
)
from app.models.enums import (
    BillingCycle, FeeKind, LeaseStatus, MarketKind, MeterType, PaymentMethod, PricingMode, RunStatus, UnitStatus,
)
from app.models.readings import ImportKind, MeterReading
from app.models.tickets import Ticket
from app.security import ADMIN, CLERK, FINANCE, LEADER, MANAGER, REPAIRER
from app.services import audit
from app.services.exceptions import Forbidden
from app.services.staff import assign_zone_manager, create_staff_user, ensure_roles
from app.utils.dates import MARKET_TZ, add_months, now_utc, period_end, period_str, today_local

DEMO_MARKET_CODE = "JJ"
DEMO_USERS = [
    ("admin", [ADMIN], "系统管理员"),
    ("leader", [LEADER], "王总"),
    ("manager1", [MANAGER], "李经理"),
    ("manager2", [MANAGER], "赵经理"),
    ("clerk", [CLERK], "陈录入"),
    ("finance", [FINANCE], "刘财务"),
    ("repairer1", [REPAIRER], "周师傅"),
]
ZONES = [
    ("A", "A区·蔬菜", "蔬菜"),
    ("B", "B区·水产", "水产"),
    ("C", "C区·干货粮油", "干货粮油"),
    ("D", "D区·肉禽", "肉禽"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强海燕红梅小龙春生德胜金凤玉兰文斌晓东国庆卫东"
SHOP_WORDS = {
    "蔬菜": ["鲜蔬", "菜行", "农家菜", "蔬菜批发", "绿源果蔬"],
    "水产": ["水产", "海鲜行", "鲜鱼档", "河鲜", "冻品"],
    "干货粮油": ["粮油", "干货行", "调味品", "米面", "南北干货"],
    "肉禽": ["鲜肉", "禽蛋", "猪肉档", "牛羊肉", "冷鲜肉"],
}


#: The merchant the walk-through in docs/wechat-pay.md uses: the first one, with a fixed phone.
DEMO_MERCHANT_CODE = "M00001"
DEMO_MERCHANT_PHONE = "13800000001"
#: Months of history built by default: the months before the current one (Asia/Shanghai).
DEFAULT_HISTORY_MONTHS = 3
#: The late-fee rule of the demo market (docs/late-fees.md): 万分之五 a day, 5 grace days, cap 10%.
DEMO_LATE_FEE = {"daily_rate": "0.0005", "grace_days": 5, "cap_percent": "10"}
#: A period is billed on this day of the next month (or today, if that is still ahead).
ISSUE_DAY = 3
READER = "陈录入"


class DemoRefused(Forbidden):
    code = "demo_refused"


def _password():
    return os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)


def seed_demo(stalls: int = 300, rng_seed: int = 20261123, history_months: int = DEFAULT_HISTORY_MONTHS) -> dict:
    """Build the demo market once and bring its history up to last month; returns what was created."""
    if not current_app.config.get("DEMO_ALLOWED", False):
        raise DemoRefused("生产环境禁止生成演示数据")
    if history_months < 0:
        raise ValueError("history_months must be >= 0")
    audit.set_actor(None, "seed-demo")
    existing = db.session.scalar(sa.select(Market).where(Market.code == DEMO_MARKET_CODE))
    if existing is not None:
        history = seed_demo_history(existing, history_months, rng_seed) if history_months else DemoHistory()
        tickets = seed_demo_tickets(existing) if history_months else 0
        return {"created": False, "market_id": existing.id, "history": history, "tickets": tickets}
    rng = random.Random(rng_seed)
    ensure_roles()
    market = Market(code=DEMO_MARKET_CODE, name="金江中心市场", kind=MarketKind.market,
                    address="金江市金江大道 88 号", due_days=15)
    db.session.add(market)
    db.session.flush()
    zones = []
    for code, name, _category in ZONES:
        zone = Zone(market_id=market.id, code=code, name=name, plan_width=120, plan_height=80)
        db.session.add(zone)
        zones.append(zone)
    db.session.flush()
    fee_items = _fee_items(market)
    units = _units(market, zones, stalls, rng)
    merchants, leases = _merchants_and_leases(market, zones, units, fee_items, rng)
    meters = _meters(market, units)
    password = _password()
    users = {}
    for username, roles, name in DEMO_USERS:
        users[username] = create_staff_user(username, password, roles, first_name=name)
    assign_zone_manager(zones[0], users["manager1"])
    for zone in zones[1:]:
        assign_zone_manager(zone, users["manager2"])
    audit.record_bulk(
        db.session, market.id, "markets",
        f"演示市场：{len(units)} 个摊位，{merchants} 户商户，{leases} 份租约，{meters} 块表",
    )
    db.session.flush()
    history = seed_demo_history(market, history_months, rng_seed) if history_months else DemoHistory()
    tickets = seed_demo_tickets(market) if history_months else 0
    return {
        "created": True,
        "tickets": tickets,
        "market_id": market.id,
        "units": len(units),
        "merchants": merchants,
        "leases": leases,
        "meters": meters,
        "password": password,
        "password_from_env": bool(os.environ.get("DEMO_PASSWORD")),
        "users": [u[0] for u in DEMO_USERS],
        "history": history,
    }


# --- tickets: a few in every state, through the ticket service ---------------------------------

#: (merchant code, kind, urgency, hours ago, description, steps, photo colours). Steps: accept
#: (assign to repairer1), progress, resolve, rate; photos go with the report.
DEMO_TICKETS = [
    ("M00001", "repair", "urgent", 2, "摊位上方的灯管不亮了，晚上看不清秤，麻烦尽快来修。", (), [(240, 200, 80)]),
    ("M00002", "repair", "normal", 30, "水龙头漏水，地面一直是湿的。", ("accept", "progress"), [(80, 140, 220)]),
    ("M00003", "complaint", "urgent", 7, "隔壁摊位占用通道堆货，顾客过不去。", (), []),
    ("M00004", "complaint", "normal", 50, "公共厕所这两天没人打扫。", ("accept", "resolve"), []),
    ("M00005", "suggestion", "normal", 20, "建议在市场入口加装一块电子屏，公布每日菜价。", (), []),
    ("M00006", "repair", "normal", 120, "电表箱的门锁坏了。", ("accept", "progress", "resolve", "rate"), [(120, 120, 120)]),
]


def seed_demo_tickets(market: Market) -> int:
    """File the demo's tickets (once) and take them through their states as staff and merchants would."""
    from app.services import tickets
    from app.utils.images import png_bytes

    if db.session.scalar(sa.select(sa.func.count(Ticket.id)).where(Ticket.market_id == market.id)):
        return 0
    staff = {u.username: u for u in db.session.scalars(
        sa.select(User).where(User.username.in_(["manager1", "manager2", "repairer1"])))}
    now = now_utc()
    created = 0
    for code, kind, urgency, hours_ago, description, steps, colours in DEMO_TICKETS:
        merchant = db.session.scalar(sa.select(Merchant).where(Merchant.market_id == market.id,
                                                               Merchant.code == code))
        if merchant is None:
            continue
        units = sorted(tickets.merchant_unit_ids(merchant))
        at = now - timedelta(hours=hours_ago)
        ticket = tickets.create_ticket(merchant, None, kind, description, unit_id=units[0] if units else None,
                                       urgency=urgency, now=at)
        for colour in colours:
            tickets.add_photo(ticket, "report", png_bytes(64, 48, colour), "photo.png", "image/png", now=at)
        manager = staff.get("manager1") if ticket.zone_id == _first_zone_id(market) else staff.get("manager2")
        repairer = staff.get("repairer1")
        step_at = at
        for step in steps:
            step_at += timedelta(hours=1)
            if step == "accept" and manager is not None and repairer is not None:
                tickets.assign_ticket(ticket.id, manager, repairer.id, now=step_at)
            elif step == "progress" and repairer is not None:
                tickets.add_progress(ticket.id, repairer, "已到现场查看，配件已领取，今天修好。", now=step_at)
            elif step == "resolve" and repairer is not None:
                tickets.resolve_ticket(ticket.id, repairer, "已处理完毕，请商户确认。", now=step_at)
            elif step == "rate":
                tickets.rate_ticket(ticket, None, 5, "修得很快，谢谢师傅", now=step_at)
        created += 1
    db.session.flush()
    return created


def _first_zone_id(market: Market) -> int | None:
    return db.session.scalar(sa.select(Zone.id).where(Zone.market_id == market.id).order_by(Zone.code).limit(1))


# --- history: readings, billing runs, payments and late fees, through the real services -------


@dataclass
class DemoHistory:
    """What one seed run added to the demo's history (all zero when it was already there)."""
    periods: list[str] = field(default_factory=list)
    readings: int = 0
    bills: int = 0
    payments: int = 0
    late_fee_days: int = 0
    late_fee_fen: int = 0


def history_periods(months: int, today: date | None = None) -> list[date]:
    """The `months` billing periods before the current month (Asia/Shanghai), oldest first."""
    this_month = (today or today_local()).replace(day=1)
    return [add_months(this_month, -k) for k in range(months, 0, -1)]


def seed_demo_history(market: Market, months: int, rng_seed: int) -> DemoHistory:
    """Read the meters, post the billing runs and record payments for each recent period not billed yet."""
    from app.services import latefees

    today = today_local()
    history = DemoHistory()
    periods = history_periods(months, today)
    posted = set(db.session.scalars(
        sa.select(BillingRun.period).where(BillingRun.market_id == market.id, BillingRun.status == RunStatus.posted)
    ))
    # The walk-through merchant keeps its bills of the last two periods unpaid.
    keep_unpaid = set(periods[-2:])
    for period in periods:
        if period in posted:
            continue
        history.periods.append(period_str(period))
        history.readings += _import_demo_readings(market, period, today, rng_seed)
        run_id, issue_date = _post_demo_billing(market, period, today)
        bills = db.session.scalars(sa.select(Bill).where(Bill.run_id == run_id).order_by(Bill.id)).all()
        history.bills += len(bills)
        history.payments += _pay_demo_bills(market, bills, period, periods[-1], keep_unpaid, rng_seed)
    if history.periods and periods:
        if db.session.scalar(sa.select(sa.func.count(LateFeeRule.id)).where(LateFeeRule.market_id == market.id)) == 0:
            latefees.create_rule(market.id, _issue_date(periods[0], today), note="演示市场滞纳金规则",
                                 **DEMO_LATE_FEE)
        accrual = latefees.accrue_late_fees(market.id, today)
        history.late_fee_days = len(accrual.days)
        history.late_fee_fen = accrual.amount_fen
    if history.periods:
        audit.record_bulk(
            db.session, market.id, "bills",
            f"演示历史数据：账期 {'、'.join(history.periods)}，{history.readings} 条抄表读数，"
            f"{history.bills} 张账单，{history.payments} 笔线下收款",
        )
    db.session.flush()
    return history


def _issue_date(period: date, today: date) -> date:
    """The day a demo period is billed: the ISSUE_DAY of the next month, never after today."""
    return min(add_months(period, 1).replace(day=ISSUE_DAY), today)


def _import_demo_readings(market: Market, period: date, today: date, rng_seed: int) -> int:
    """Write the period's meter sheet as a CSV and import it through the readings service."""
    from app.services.readings import create_import_batch, import_meter_readings

    meters = db.session.execute(
        sa.select(Meter.id, Meter.number, Meter.meter_type, Meter.start_reading, Unit.status)
        .join(Unit, Unit.id == Meter.unit_id, isouter=True)
        .where(Meter.market_id == market.id, Meter.is_active.is_(True)).order_by(Meter.id)
    ).all()
    latest = {}
    for meter_id, reading in db.session.execute(
        sa.select(MeterReading.meter_id, MeterReading.reading)
        .where(MeterReading.market_id == market.id, MeterReading.period < period)
        .order_by(MeterReading.period)
    ):
        latest[meter_id] = Decimal(reading)
    read_date = min(period_end(period), today)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["表号", "账期", "读数", "抄表日期", "抄表人"])
    for meter in meters:
        previous = latest.get(meter.id, Decimal(meter.start_reading or 0))
        used = _demo_consumption(meter, period, rng_seed)
        writer.writerow([meter.number, period_str(period), f"{previous + used:f}", read_date.isoformat(), READER])
    filename = f"demo-readings-{period_str(period)}.csv"
    batch = create_import_batch(market.id, ImportKind.readings, filename, source="demo")
    result = import_meter_readings(batch, io.BytesIO(out.getvalue().encode("utf-8")), filename)
    return result.inserted


def _demo_consumption(meter, period: date, rng_seed: int) -> Decimal:
    """A meter's use in a period: its own steady level, give or take a quarter; nothing on a vacant stall."""
    status = getattr(meter.status, "value", meter.status)
    if status != UnitStatus.leased.value:
        return Decimal(0)
    level = random.Random(f"{rng_seed}:{meter.number}")
    month = random.Random(f"{rng_seed}:{meter.number}:{period_str(period)}")
    factor = Decimal(month.randrange(75, 126)) / 100
    meter_type = getattr(meter.meter_type, "value", meter.meter_type)
    if meter_type == MeterType.water.value:
        return (Decimal(level.randrange(30, 250)) / 10 * factor).quantize(Decimal("0.1"))
    return (Decimal(level.randrange(80, 520)) * factor).quantize(Decimal(1))


def _post_demo_billing(market: Market, period: date, today: date) -> tuple[int, date]:
    """Post the period's billing run through the billing service, issued as the market would have."""
    from app.services import billing

    issue_date = _issue_date(period, today)
    run = billing.request_billing_run(market.id, period, issue_date=issue_date)
    billing.post_billing_run(run.id)
    return run.id, issue_date


def _payer_profile(rng_seed: int, merchant_code: str) -> str:
    """How a demo merchant pays: prompt, behind (skips the latest bill), partial, or not at all."""
    draw = random.Random(f"{rng_seed}:{merchant_code}:payer").random()
    if draw < 0.70:
        return "prompt"
    if draw < 0.86:
        return "behind"
    if draw < 0.93:
        return "partial"
    return "debtor"


def _pay_demo_bills(market, bills, period, latest_period, keep_unpaid, rng_seed) -> int:
    """Record the period's cash and bank payments through the payments service (one per bill)."""
    from app.services.payments import record_payment

    codes = dict(db.session.execute(
        sa.select(Merchant.id, Merchant.code).where(Merchant.id.in_({b.merchant_id for b in bills}))
    ).all()) if bills else {}
    now = now_utc()
    count = 0
    for bill in bills:
        code = codes[bill.merchant_id]
        if code == DEMO_MERCHANT_CODE:
            share = 0 if period in keep_unpaid else 1
        else:
            profile = _payer_profile(rng_seed, code)
            share = {"prompt": 1, "behind": 0 if period == latest_period else 1,
                     "partial": Decimal("0.5"), "debtor": 0}[profile]
        owed = bill.outstanding_fen
        amount = int(owed * share) if share != 1 else owed
        if amount <= 0:
            continue
        rng = random.Random(f"{rng_seed}:{bill.number}:paid")
        method = PaymentMethod.cash if rng.random() < 0.4 else PaymentMethod.bank_transfer
        day = bill.issue_date + timedelta(days=rng.randrange(0, 12))
        paid_dt = datetime.combine(day, time(9 + rng.randrange(8), rng.randrange(60)), MARKET_TZ)
        paid_dt = min(paid_dt.astimezone(now.tzinfo), now - timedelta(minutes=1))
        tag = "CASH" if method == PaymentMethod.cash else "BANK"
        record_payment(
            market.id, bill.merchant_id, [bill.id], amount, method, f"DEMO-{tag}-{bill.number}", paid_dt,
            note="演示数据",
        )
        count += 1
    return count


def _fee_items(market):
    items = {
        "rent": FeeItem(market_id=market.id, code="RENT", name="摊位租金", kind=FeeKind.rent,
                        pricing_mode=PricingMode.per_area, default_rate_fen=Decimal("6000"), unit_label="m²", sort_order=1),
        "mgmt": FeeItem(market_id=market.id, code="MGMT", name="管理费", kind=FeeKind.management,
                        pricing_mode=PricingMode.per_area, default_rate_fen=Decimal("500"), unit_label="m²", sort_order=2),
        "sanitation": FeeItem(market_id=market.id, code="SANI", name="卫生费", kind=FeeKind.sanitation,
                              pricing_mode=PricingMode.fixed, default_rate_fen=Decimal("3000"), sort_order=3),
        "water": FeeItem(market_id=market.id, code="WATER", name="水费", kind=FeeKind.water,
                         pricing_mode=PricingMode.metered, meter_type=MeterType.water,
                         default_rate_fen=Decimal("420"), unit_label="吨", sort_order=4),
        "power": FeeItem(market_id=market.id, code="POWER", name="电费", kind=FeeKind.electricity,
                         pricing_mode=PricingMode.metered, meter_type=MeterType.electricity,
                         default_rate_fen=Decimal("68"), unit_label="kWh", sort_order=5),
    }
    db.session.add_all(items.values())
    db.session.flush()
    for low, high, rate in ((0, 200, "68"), (200, 400, "73"), (400, None, "98")):
        db.session.add(FeeTier(market_id=market.id, fee_item_id=items["power"].id, from_qty=Decimal(low),
                               to_qty=None if high is None else Decimal(high), rate_fen=Decimal(rate)))
    for low, high, rate in ((0, 20, "420"), (20, None, "540")):
        db.session.add(FeeTier(market_id=market.id, fee_item_id=items["water"].id, from_qty=Decimal(low),
                               to_qty=None if high is None else Decimal(high), rate_fen=Decimal(rate)))
    return items


def _units(market, zones, stalls, rng):
    """Lay stalls out in rows of 10, back to back in pairs with an aisle between pairs."""
    now = now_utc()
    per_zone = [stalls // len(zones) + (1 if i < stalls % len(zones) else 0) for i in range(len(zones))]
    rows = []
    for zone, count, (_c, _n, category) in zip(zones, per_zone, ZONES):
        for i in range(count):
            row, col = divmod(i, 10)
            width = Decimal(rng.choice(["3", "4", "4", "5"]))
            rows.append({
                "market_id": market.id, "zone_id": zone.id, "code": f"{zone.code}-{i + 1:03d}",
                "floor": "1", "area_m2": width * Decimal("3"), "category": category,
                "status": UnitStatus.vacant.value,
                "plan_x": Decimal(2 + col * 11), "plan_y": Decimal(2 + row * 4 + (row // 2) * 4),
                "plan_w": Decimal(10), "plan_h": Decimal(3),
                "created_dt": now, "updated_dt": now,
            })
    _bulk_insert(Unit, rows)
    return db.session.execute(
        sa.select(Unit.id, Unit.zone_id, Unit.area_m2, Unit.code, Unit.category)
        .where(Unit.market_id == market.id).order_by(Unit.id)
    ).all()


def _bulk_insert(model, rows, chunk=5000):
    for start in range(0, len(rows), chunk):
        db.session.execute(sa.insert(model), rows[start:start + chunk])


def _merchants_and_leases(market, zones, units, fee_items, rng):
    """About 85% of stalls are leased; a few merchants hold two neighbouring stalls."""
    now = now_utc()
    this_month = today_local().replace(day=1)
    merchants, leases, links, lease_fee_rows, leased_unit_ids = [], [], [], [], []
    i = 0
    index = 0
    while index < len(units):
        unit = units[index]
        take = 2 if rng.random() < 0.08 and index + 1 < len(units) and units[index + 1].zone_id == unit.zone_id else 1
        group = units[index:index + take]
        index += take
        if rng.random() > 0.85:
            continue
        i += 1
        surname = SURNAMES[rng.randrange(len(SURNAMES))]
        given = GIVEN[rng.randrange(len(GIVEN))] + (GIVEN[rng.randrange(len(GIVEN))] if rng.random() < 0.6 else "")
        shop = rng.choice(SHOP_WORDS[unit.category])
        phone = f"13{rng.randrange(0, 10)}{rng.randrange(10**8):08d}"
        merchants.append({
            "market_id": market.id, "code": f"M{i:05d}", "name": f"{surname}记{shop}",
            "zone_id": unit.zone_id, "contact_name": surname + given,
            "phone": DEMO_MERCHANT_PHONE if i == 1 else phone,
            "credit_code": f"92{rng.randrange(10**6):06d}MA{rng.randrange(10**8):08d}"[:18],
            "notify_wechat": True, "notify_sms": rng.random() < 0.7, "notify_bill": True,
            "notify_overdue": True, "notify_ticket": True, "created_dt": now, "updated_dt": now,
        })
        # Leases began 4 to 24 months before the current month and run past today.
        start = add_months(this_month, -(4 + rng.randrange(2) * 12 + rng.choice([0, 2, 3, 6, 8])))
        years = rng.choice([1, 2, 3])
        while add_months(start, 12 * years) <= this_month:
            years += 1
        monthly = rng.random() < 0.85 or i == 1  # the walk-through merchant is billed every month
        leases.append({
            "market_id": market.id, "code": f"L{i:05d}", "zone_id": unit.zone_id,
            "start_date": start, "end_date": add_months(start, 12 * years),
            "deposit_fen": int(group[0].area_m2 * 6000 * 2), "status": LeaseStatus.active.value,
            "billing_cycle": (BillingCycle.monthly if monthly else BillingCycle.quarterly).value,
            "created_dt": now, "updated_dt": now, "_units": [u.id for u in group],
        })
        leased_unit_ids.extend(u.id for u in group)
    _bulk_insert(Merchant, merchants)
    merchant_ids = db.session.execute(
        sa.select(Merchant.code, Merchant.id).where(Merchant.market_id == market.id)
    ).all()
    by_code = dict(merchant_ids)
    unit_groups = []
    for n, lease in enumerate(leases, start=1):
        lease["merchant_id"] = by_code[f"M{n:05d}"]
        unit_groups.append(lease.pop("_units"))
        lease["end_date"] = lease["end_date"] - timedelta(days=1)
    _bulk_insert(Lease, leases)
    lease_ids = dict(db.session.execute(sa.select(Lease.code, Lease.id).where(Lease.market_id == market.id)).all())
    for n, group in enumerate(unit_groups, start=1):
        lease_id = lease_ids[f"L{n:05d}"]
        links.extend({"lease_id": lease_id, "unit_id": uid} for uid in group)
        for key in ("rent", "mgmt", "sanitation", "water", "power"):
            lease_fee_rows.append({
                "market_id": market.id, "lease_id": lease_id, "fee_item_id": fee_items[key].id,
                "effective_from": leases[n - 1]["start_date"], "rate_fen": None,
                "created_dt": now, "updated_dt": now,
            })
    _bulk_insert(lease_units, links)
    _bulk_insert(LeaseFee, lease_fee_rows)
    for start in range(0, len(leased_unit_ids), 5000):
        db.session.execute(
            sa.update(Unit).where(Unit.id.in_(leased_unit_ids[start:start + 5000]))
            .values(status=UnitStatus.leased.value)
        )
    return len(merchants), len(leases)


def _meters(market, units):
    now = now_utc()
    rows = []
    for unit in units:
        for meter_type, prefix, label, maximum in (
            (MeterType.water, "W", "吨", Decimal("99999")),
            (MeterType.electricity, "E", "kWh", Decimal("999999")),
        ):
            rows.append({
                "market_id": market.id, "number": f"{prefix}{unit.code.replace('-', '')}",
                "meter_type": meter_type.value, "unit_id": unit.id, "zone_id": unit.zone_id,
                "unit_label": label, "multiplier": Decimal(1), "max_reading": maximum,
                "install_date": date(2024, 12, 1), "start_reading": Decimal(0),
                "is_public": False, "is_active": True, "created_dt": now, "updated_dt": now,
            })
    _bulk_insert(Meter, rows)
    return len(rows)
